// Type-checked with `tsc --noEmit` against the installed package's .d.ts (ESM and CJS).
import { Client, RateLimitError, type QueryResult, type StreamChunk } from "@aimm/client";

export async function main(): Promise<string> {
  const client = new Client({ baseUrl: "http://127.0.0.1:8080", apiKey: "k", timeoutMs: 1000 });
  const result: QueryResult = await client.query("hi", { model: "smart", maxTokens: 10 });
  for await (const chunk of client.stream("hi")) {
    const c: StreamChunk = chunk;
    if (c.type === "content") return c.text;
    return c.usage.totalCost.toFixed(6);
  }
  try {
    await client.batch(["a", { prompt: "b", model: "m" }]);
  } catch (err) {
    if (err instanceof RateLimitError) return String(err.retryAfter ?? err.status);
  }
  return result.text;
}
