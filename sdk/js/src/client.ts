import { APIConnectionError, APIError, APITimeoutError, AimmError, errorFromBody } from "./errors.js";
import { Feed, type WebSocketConstructor } from "./feed.js";
import { OPERATIONS, call, safeToRepeat, type Call } from "./operations.js";
import { delayForConnection, delayForStatus, parseRetryAfter, sleep, type RetryPolicy } from "./retry.js";
import { QueryStream } from "./stream.js";
import {
  batchResult,
  modelList,
  modelStatus,
  multipleResult,
  queryResult,
  type BatchResult,
  type Feedback,
  type JSONObject,
  type ModelList,
  type ModelStatus,
  type MultipleResult,
  type QueryResult,
} from "./types.js";

export interface ClientOptions {
  /** Default: AIMM_BASE_URL, else http://127.0.0.1:8080 */
  baseUrl?: string;
  /** Default: AIMM_API_KEY */
  apiKey?: string;
  /** Used for admin calls when set. Default: AIMM_ADMIN_TOKEN */
  adminToken?: string;
  /** Per attempt. Default 60 000 ms. */
  timeoutMs?: number;
  maxRetries?: number;
  retryNonIdempotent?: boolean;
  fetch?: typeof fetch;
  /** For runtimes without a global WebSocket (Node 20 without --experimental-websocket): e.g. `ws`. */
  WebSocket?: WebSocketConstructor;
}

export interface RequestOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface PromptOptions extends RequestOptions {
  model?: string;
  system?: string;
  maxTokens?: number;
  temperature?: number;
  fallbackModel?: string;
}

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name] || undefined;
}

function promptBody(prompt: string, o: PromptOptions = {}): JSONObject {
  const body: JSONObject = { prompt };
  if (o.model !== undefined) body.model = o.model;
  if (o.system !== undefined) body.system = o.system;
  if (o.maxTokens !== undefined) body.max_tokens = o.maxTokens;
  if (o.temperature !== undefined) body.temperature = o.temperature;
  if (o.fallbackModel !== undefined) body.fallback_model = o.fallbackModel;
  return body;
}

function definedOnly(params: Record<string, string | undefined>): Record<string, string> | undefined {
  const out = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined)) as Record<string, string>;
  return Object.keys(out).length ? out : undefined;
}

/** Talks to one aimm gateway. */
export class Client {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  readonly adminToken: string | undefined;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  private readonly fetchFn: typeof fetch;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? env("AIMM_BASE_URL") ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? env("AIMM_API_KEY");
    this.adminToken = options.adminToken ?? env("AIMM_ADMIN_TOKEN");
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.retry = {
      maxRetries: options.maxRetries ?? 2,
      initialBackoffMs: 500,
      maxBackoffMs: 8000,
      maxRetryAfterMs: 60_000,
      retryNonIdempotent: options.retryNonIdempotent ?? false,
    };
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocketImpl = options.WebSocket;
  }

  // -- transport ------------------------------------------------------------------------------

  private headers(c: Call): Record<string, string> {
    // A fresh request id per attempt: the gateway adopts it, so every error has one to quote.
    const headers: Record<string, string> = { accept: "application/json", "x-request-id": crypto.randomUUID() };
    const token = c.admin && this.adminToken ? this.adminToken : this.apiKey;
    if (token) headers.authorization = `Bearer ${token}`;
    if (c.body !== undefined) headers["content-type"] = "application/json";
    return headers;
  }

  /**
   * One call with the retry rules of `retry.ts`. `read` consumes the answer while the attempt's
   * timeout still runs (for streams it returns at once, so the timeout covers only the headers).
   */
  async exchange<T>(c: Call, options: RequestOptions, read: (response: Response) => Promise<T>): Promise<T> {
    const url = new URL(this.baseUrl + c.path);
    for (const [k, v] of Object.entries(c.query ?? {})) url.searchParams.set(k, v);
    const body = c.body === undefined ? undefined : JSON.stringify(c.body);
    const ms = options.timeoutMs ?? this.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const timer = new AbortController();
      const timeout = setTimeout(() => timer.abort(new APITimeoutError(`timed out after ${ms} ms`)), ms);
      const signal = options.signal ? AbortSignal.any([options.signal, timer.signal]) : timer.signal;
      let wait: number;
      let headers: Record<string, string> = {};
      try {
        let response: Response;
        try {
          headers = this.headers(c);
          response = await this.fetchFn(url, { method: c.method, headers, body, signal });
        } catch (err) {
          if (options.signal?.aborted) throw options.signal.reason;
          const timedOut = timer.signal.aborted;
          const delay = delayForConnection(this.retry, attempt, timedOut || !notSent(err), safeToRepeat(c));
          if (delay === null) throw timedOut ? timer.signal.reason : connectionError(err);
          await sleep(delay, options.signal);
          continue;
        }
        if (response.ok) return await read(response);
        const error = await apiError(response, headers["x-request-id"]);
        const delay = delayForStatus(this.retry, attempt, response.status, safeToRepeat(c), error.retryAfter);
        if (delay === null) throw error;
        wait = delay;
      } catch (err) {
        if (timer.signal.aborted && !options.signal?.aborted) throw timer.signal.reason;
        throw err;
      } finally {
        clearTimeout(timeout);
      }
      await sleep(wait, options.signal);
    }
  }

  private async json<T = JSONObject>(c: Call, options: RequestOptions = {}): Promise<T> {
    return this.exchange(c, options, async (response) => (await response.json()) as T);
  }

  // -- native API -----------------------------------------------------------------------------

  /** One prompt to a model or route (the gateway's default when `model` is unset). */
  async query(prompt: string, options: PromptOptions = {}): Promise<QueryResult> {
    return queryResult(await this.json(call("query", { body: promptBody(prompt, options) }), options));
  }

  /** One prompt to several models at once; `compare` adds the agreement/fastest/cheapest summary. */
  async queryMultiple(
    prompt: string,
    models: string[],
    options: Omit<PromptOptions, "model" | "fallbackModel"> & { compare?: boolean } = {},
  ): Promise<MultipleResult> {
    const body = { ...promptBody(prompt, options), models, compare_results: options.compare ?? true };
    return multipleResult(await this.json(call("queryMultiple", { body }), options));
  }

  /** `for await (const chunk of client.stream(...))`: content chunks, then one final chunk. */
  stream(prompt: string, options: PromptOptions = {}): QueryStream {
    return new QueryStream(this, call("stream", { body: promptBody(prompt, options) }), options);
  }

  /** Many prompts in one call; results keep the order of `items` (failures included). */
  async batch(items: Array<string | PromptOptions & { prompt: string }>, options: RequestOptions & { model?: string } = {}): Promise<BatchResult> {
    const requests = items.map((item) =>
      typeof item === "string"
        ? promptBody(item, { model: options.model })
        : promptBody(item.prompt, { model: options.model, ...item }),
    );
    return batchResult(await this.json(call("batch", { body: { requests } }), options));
  }

  async feedback(model: string, score: number, options: RequestOptions & { requestId?: string } = {}): Promise<Feedback> {
    const body: JSONObject = { model, score };
    if (options.requestId) body.request_id = options.requestId;
    return this.json<Feedback>(call("feedback", { body }), options);
  }

  async models(options?: RequestOptions): Promise<ModelList> {
    return modelList(await this.json(call("models"), options));
  }

  /** Live totals over the stats window (RPS, latency percentiles, error rate, spend). */
  async metrics(options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("metrics"), options);
  }

  async stats(options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("stats"), options);
  }

  /** Usage analytics between `from` and `to` (ISO 8601), grouped by model, day, ... */
  async usage(params: { from?: string; to?: string; groupBy?: string | string[] } = {}, options?: RequestOptions): Promise<JSONObject> {
    const groupBy = Array.isArray(params.groupBy) ? params.groupBy.join(",") : params.groupBy;
    const query = definedOnly({ from: params.from, to: params.to, group_by: groupBy });
    return this.json(call("usage", { query }), options);
  }

  /** The biggest spenders between `from` and `to`, by key, team, model, ... */
  async topConsumers(params: { by?: string; limit?: number; from?: string; to?: string } = {}, options?: RequestOptions): Promise<JSONObject> {
    const query = definedOnly({ by: params.by, limit: params.limit?.toString(), from: params.from, to: params.to });
    return this.json(call("topConsumers", { query }), options);
  }

  /** The PDF report of a period (`YYYY-MM`, default this month). */
  async report(params: { period?: string } = {}, options: RequestOptions = {}): Promise<Uint8Array> {
    const c = call("report", { query: definedOnly({ period: params.period }) });
    return this.exchange(c, options, async (r) => new Uint8Array(await r.arrayBuffer()));
  }

  async budgets(options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("budgets"), options);
  }

  async health(options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("health"), options);
  }

  async ready(options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("ready"), options);
  }

  // -- admin ----------------------------------------------------------------------------------

  /** Add a model at runtime (the same fields as a `models:` entry of the gateway config). */
  async addModel(config: JSONObject, options?: RequestOptions): Promise<ModelStatus> {
    return modelStatus(await this.json(call("addModel", { body: config, admin: true }), options));
  }

  async updateModel(name: string, changes: JSONObject, options?: RequestOptions): Promise<ModelStatus> {
    return this.patchModel("updateModel", name, changes, options);
  }

  async enableModel(name: string, options?: RequestOptions): Promise<ModelStatus> {
    return this.patchModel("enableModel", name, { enabled: true }, options);
  }

  async disableModel(name: string, options?: RequestOptions): Promise<ModelStatus> {
    return this.patchModel("disableModel", name, { enabled: false }, options);
  }

  /** Weigh a model for weighted routes (0 to 1,000,000; 0: never the weighted pick). */
  async setModelWeight(name: string, weight: number, options?: RequestOptions): Promise<ModelStatus> {
    return this.patchModel("setModelWeight", name, { weight }, options);
  }

  private async patchModel(op: "updateModel" | "enableModel" | "disableModel" | "setModelWeight", name: string, changes: JSONObject, options?: RequestOptions): Promise<ModelStatus> {
    // Setting fields to given values: repeating it changes nothing more, so it may be retried.
    const c = call(op, { body: changes, admin: true, idempotent: true }, { name });
    return modelStatus(await this.json(c, options));
  }

  async modelsStatus(options?: RequestOptions): Promise<ModelStatus[]> {
    const doc = await this.json(call("modelsStatus", { admin: true }), options);
    return doc.models.map(modelStatus);
  }

  /** A new API key; its secret is in the answer once and never again. */
  async createKey(name: string, spec: JSONObject = {}, options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("createKey", { body: { name, role: "user", ...spec }, admin: true }), options);
  }

  async listKeys(options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("listKeys", { admin: true }), options);
  }

  async revokeKey(keyId: string, options?: RequestOptions): Promise<void> {
    await this.exchange(call("revokeKey", { admin: true }, { key_id: keyId }), options ?? {}, async () => undefined);
  }

  async rotateKey(keyId: string, spec: JSONObject = {}, options?: RequestOptions): Promise<JSONObject> {
    return this.json(call("rotateKey", { body: spec, admin: true }, { key_id: keyId }), options);
  }

  /** One page of the audit trail, newest first: `data` (each record with `verified`), `verified`,
   * `has_more` and `next_cursor` (pass it as `cursor` for the next page). Times: ISO 8601 or Unix seconds. */
  async audit(
    params: { since?: string | number; until?: string | number; actor?: string; action?: string; outcome?: string; limit?: number; cursor?: string } = {},
    options?: RequestOptions,
  ): Promise<JSONObject> {
    const query = definedOnly({
      since: params.since?.toString(), until: params.until?.toString(), actor: params.actor, action: params.action,
      outcome: params.outcome, limit: params.limit?.toString(), cursor: params.cursor,
    });
    return this.json(call("audit", { query, admin: true }), options);
  }

  // -- live feed ------------------------------------------------------------------------------

  /** The live feed: `for await (const event of client.subscribe(["metrics"]))`; `close()` ends it. */
  subscribe(channels: string[], options: { signal?: AbortSignal } = {}): Feed {
    const url = new URL(this.baseUrl.replace(/^http/, "ws") + OPERATIONS.subscribe[1]);
    url.searchParams.set("channels", channels.join(","));
    const Impl = this.WebSocketImpl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Impl) {
      throw new AimmError(
        "no WebSocket implementation: run Node 20 with --experimental-websocket (Node >= 22 has one), or pass `WebSocket` (e.g. from the ws package) to the Client",
      );
    }
    return new Feed(Impl, url.toString(), channels, this.apiKey, Impl !== (globalThis as { WebSocket?: unknown }).WebSocket, options.signal);
  }
}

const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET_BEFORE_SEND", "UND_ERR_CONNECT_TIMEOUT"]);

function notSent(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } } | null)?.cause;
  return !!cause?.code && NOT_SENT_CODES.has(cause.code);
}

function connectionError(err: unknown): APIConnectionError {
  const cause = (err as { cause?: { message?: string } } | null)?.cause;
  return new APIConnectionError(`connection failed: ${cause?.message ?? String(err)}`);
}

/** The exception for an error response. */
export async function apiError(response: Response, sentRequestId?: string): Promise<APIError> {
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return errorFromBody(body, {
    status: response.status,
    requestId: response.headers.get("x-request-id") ?? sentRequestId ?? null,
    retryAfter: parseRetryAfter(response.headers),
  });
}
