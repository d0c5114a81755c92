import { APIConnectionError, errorFromBody } from "./errors.js";
import type { Call } from "./operations.js";
import { finalChunk, type FinalChunk, type JSONObject, type StreamChunk } from "./types.js";
import type { Client, RequestOptions } from "./client.js";

/** One SSE line of /api/v1/query/stream → a chunk; an error event throws its APIError. */
export function decodeEvent(line: string, requestId: string | null): StreamChunk | null {
  if (!line.startsWith("data:")) return null;
  const event = JSON.parse(line.slice(5)) as JSONObject;
  if (event.type === "content") return { type: "content", text: event.text ?? "" };
  if (event.type === "usage") return finalChunk(event);
  if (event.type === "error") throw errorFromBody(event, { requestId, duringStream: true });
  return null;
}

async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n")) >= 0) {
        yield buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
      }
    }
    if (buffer) yield buffer;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/**
 * An answer being streamed: `for await` it; `abort()` (or the caller's AbortSignal) stops it
 * mid-way. The request is sent when iteration starts, so errors before the first byte (with
 * retries) throw there; an error event mid-stream throws its APIError with `duringStream`.
 */
export class QueryStream implements AsyncIterable<StreamChunk> {
  text = "";
  final: FinalChunk | null = null;
  requestId: string | null = null;
  private readonly controller = new AbortController();

  constructor(
    private readonly client: Client,
    private readonly c: Call,
    private readonly options: RequestOptions,
  ) {}

  abort(reason?: unknown): void {
    this.controller.abort(reason);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamChunk> {
    const signal = this.options.signal
      ? AbortSignal.any([this.options.signal, this.controller.signal])
      : this.controller.signal;
    const response = await this.client.exchange(this.c, { ...this.options, signal }, async (r) => r);
    this.requestId = response.headers.get("x-request-id");
    if (!response.body) throw new APIConnectionError("stream answered without a body");
    try {
      for await (const line of lines(response.body)) {
        const chunk = decodeEvent(line, this.requestId);
        if (chunk === null) continue;
        if (chunk.type === "content") this.text += chunk.text;
        else this.final = chunk;
        yield chunk;
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof TypeError) throw new APIConnectionError(`stream broken: ${err.message}`);
      throw err;
    } finally {
      this.controller.abort();
    }
  }
}
