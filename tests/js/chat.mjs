// The openai npm package, pointed at memlane: one chat, one stream, JSON on stdout.
import OpenAI from "openai";

const [baseURL, apiKey, userId] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const resp = await client.chat.completions.create({
  model: "gpt-4.1-nano",
  messages: [{ role: "user", content: "I love Indian food but I'm allergic to cheese." }],
  user_id: userId,
  include_memories: true,
});
let streamed = "";
const stream = await client.chat.completions.create({
  model: "gpt-4.1-nano",
  messages: [{ role: "user", content: "Suggest dinner options in San Francisco." }],
  stream: true,
  stream_options: { include_usage: true },
  user_id: userId,
});
let usage = null;
for await (const chunk of stream) {
  for (const choice of chunk.choices) streamed += choice.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
let status = null;
try {
  await new OpenAI({ baseURL, apiKey: "ml-wrong", maxRetries: 0 }).models.list();
} catch (err) {
  status = err.status;
}
console.log(JSON.stringify({ content: resp.choices[0].message.content, memories: resp.metadata?.memories ?? null, streamed, usage, status }));
