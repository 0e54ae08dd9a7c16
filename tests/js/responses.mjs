// The openai npm package's Responses API, pointed at memlane: one response, one stream, JSON on stdout.
import OpenAI from "openai";

const [baseURL, apiKey, userId] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

const first = await client.responses.create({
  model: "gpt-4.1-nano",
  input: "I love Indian food but I'm allergic to cheese.",
  user_id: userId,
});
const stream = await client.responses.create({
  model: "gpt-4.1-nano",
  instructions: "You plan meals.",
  input: [{ role: "user", content: "Suggest dinner options in San Francisco." }],
  stream: true,
  user_id: userId,
  include_memories: true,
});
let streamed = "";
const kinds = [];
let memories = null;
for await (const event of stream) {
  kinds.push(event.type);
  if (event.metadata?.memories) memories = event.metadata.memories.map((m) => m.memory);
  if (event.type === "response.output_text.delta") streamed += event.delta;
}
console.log(JSON.stringify({ text: first.output_text, exchange: first.metadata?.exchange_id ?? null, streamed, kinds, memories }));
