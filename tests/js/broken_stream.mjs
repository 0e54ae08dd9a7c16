// The openai npm package reading a stream that the upstream breaks off: what it got, and how it failed.
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
let streamed = "";
let error = null;
try {
  const stream = await client.chat.completions.create({
    model: "gpt-4.1-nano",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  for await (const chunk of stream) {
    for (const choice of chunk.choices) streamed += choice.delta?.content ?? "";
  }
} catch (err) {
  error = { name: err.constructor.name, message: err.message };
}
console.log(JSON.stringify({ streamed, error }));
