// The official `openai` npm package against the real proxy: a non-streaming and a streaming chat
// completion, reading usage.cost. Prints one JSON line with what it saw; the pytest driver
// (tests/test_node_gateway.py) checks it. Usage: node gateway.mjs <baseURL> <apiKey> <model>
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  console.error("usage: node gateway.mjs <baseURL> <apiKey> <model>");
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
const messages = [{ role: "user", content: "hi" }];

// Non-streaming: usage.cost in the body, x-litellm-response-cost in the headers.
const { data: reply, response } = await client.chat.completions.create({ model, messages }).withResponse();

// Streaming: the chunk that carries usage (include_usage) also carries usage.cost.
const stream = await client.chat.completions.create({ model, messages, stream: true, stream_options: { include_usage: true } });
let text = "";
let streamUsage = null;
for await (const chunk of stream) {
  text += chunk.choices?.[0]?.delta?.content ?? "";
  if (chunk.usage) streamUsage = chunk.usage;
}

console.log(JSON.stringify({
  text: reply.choices[0].message.content,
  cost: reply.usage.cost,
  cost_details: reply.usage.cost_details,
  header_cost: response.headers.get("x-litellm-response-cost"),
  stream_text: text,
  stream_cost: streamUsage?.cost ?? null,
  stream_cost_details: streamUsage?.cost_details ?? null,
}));
