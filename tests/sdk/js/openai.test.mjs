// The official `openai` npm package against the gateway, configured with only a base URL and a key.
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";
import { env } from "./helpers.mjs";

const openai = new OpenAI({ baseURL: `${env.baseUrl}/v1`, apiKey: env.apiKey, maxRetries: 0 });

test("chat completion", async () => {
  const r = await openai.chat.completions.create({ model: "mock-fast", messages: [{ role: "user", content: "Hello" }] });
  assert.equal(r.model, "mock-fast");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(r.usage.total_tokens > 0);
});

test("streamed chat completion with usage", async () => {
  const stream = await openai.chat.completions.create({
    model: "smart",
    messages: [{ role: "user", content: "Stream please" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.ok(text.length > 0 && usage.completion_tokens > 0);
});

test("tool calling", async () => {
  const r = await openai.chat.completions.create({
    model: "mock-smart",
    messages: [{ role: "user", content: "What is the weather in Paris?" }],
    tools: [
      {
        type: "function",
        function: {
          name: "get_weather",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
    ],
    tool_choice: "required",
  });
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.equal(call.function.name, "get_weather");
  assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
});

test("models and errors", async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  assert.ok(ids.includes("mock-fast") && ids.includes("smart"));
  await assert.rejects(
    openai.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404,
  );
});
