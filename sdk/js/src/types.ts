// Typed results. Each keeps the raw JSON (`raw`) so fields the gateway adds later stay reachable.
import { APIError, errorFromBody } from "./errors.js";

export type JSONObject = Record<string, any>;

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** USD */
  totalCost: number;
}

export interface QueryResult {
  text: string;
  model: string;
  provider: string;
  usage: Usage;
  latencyMs: number;
  requestId: string;
  finishReason: string | null;
  raw: JSONObject;
}

/** One model's or one batch item's failure inside a successful call. */
export interface QueryFailure {
  model: string | null;
  error: APIError;
  raw: JSONObject;
}

export interface Comparison {
  succeeded: number;
  failed: number;
  agreementScore: number | null;
  fastestModel: string | null;
  cheapestModel: string | null;
  latencyMs: Record<string, number>;
  costUsd: Record<string, number>;
  totalTokens: Record<string, number>;
}

export interface MultipleResult {
  requestId: string;
  results: Array<QueryResult | QueryFailure>;
  comparison: Comparison | null;
  raw: JSONObject;
}

export interface BatchResult {
  requestId: string;
  /** In request order, failures included. */
  results: Array<QueryResult | QueryFailure>;
  succeeded: number;
  failed: number;
  raw: JSONObject;
}

export interface ContentChunk {
  type: "content";
  text: string;
}

/** The last event of a stream: who answered, usage and cost. */
export interface FinalChunk {
  type: "usage";
  model: string;
  provider: string;
  usage: Usage;
  finishReason: string | null;
  latencyMs: number;
  requestId: string;
}

export type StreamChunk = ContentChunk | FinalChunk;

export interface ModelInfo {
  name: string;
  provider: string;
  model: string;
  enabled: boolean;
  health: "healthy" | "degraded" | "unavailable";
  circuitState: string;
  reason: string | null;
  price: { inputPer1k: string; outputPer1k: string };
  capabilities: string[];
  contextWindow: number | null;
  maxTokens: number | null;
  weight: number;
  raw: JSONObject;
}

export interface RouteInfo {
  name: string;
  algorithm: string;
  targets: string[];
  fallbacks: string[];
  /** Each target's effective weight, in the order of `targets`. */
  weights: number[];
}

export interface ModelList {
  models: ModelInfo[];
  routes: RouteInfo[];
}

export interface ModelStatus {
  name: string;
  provider: string;
  enabled: boolean;
  available: boolean;
  health: string;
  circuitState: string;
  source: string;
  requestsTotal: number;
  errorsTotal: number;
  weight: number;
  raw: JSONObject;
}

export interface Feedback {
  accepted: boolean;
  model: string;
  score: number;
}

export interface FeedEvent {
  channel: string;
  data: unknown;
  raw: JSONObject;
}

export const isFailure = (r: QueryResult | QueryFailure): r is QueryFailure => "error" in r;

export function usage(d: JSONObject): Usage {
  return {
    promptTokens: d.prompt_tokens ?? 0,
    completionTokens: d.completion_tokens ?? 0,
    totalTokens: d.total_tokens ?? 0,
    totalCost: Number(d.total_cost ?? 0),
  };
}

export function queryResult(d: JSONObject): QueryResult {
  return {
    text: d.text,
    model: d.model,
    provider: d.provider,
    usage: usage(d.usage),
    latencyMs: d.latency_ms,
    requestId: d.request_id,
    finishReason: d.finish_reason ?? null,
    raw: d,
  };
}

function result(d: JSONObject, requestId: string | null): QueryResult | QueryFailure {
  if (!("error" in d)) return queryResult(d);
  return { model: d.model ?? null, error: errorFromBody(d, { status: d.status, requestId }), raw: d };
}

export function multipleResult(d: JSONObject): MultipleResult {
  const c = d.comparison;
  const comparison: Comparison | null = c
    ? {
        succeeded: c.succeeded,
        failed: c.failed,
        agreementScore: c.agreement_score ?? null,
        fastestModel: c.fastest_model ?? null,
        cheapestModel: c.cheapest_model ?? null,
        latencyMs: c.latency_ms ?? {},
        costUsd: c.cost_usd ?? {},
        totalTokens: c.total_tokens ?? {},
      }
    : null;
  return { requestId: d.request_id, results: d.results.map((r: JSONObject) => result(r, d.request_id)), comparison, raw: d };
}

export function batchResult(d: JSONObject): BatchResult {
  const items = [...d.results].sort((a: JSONObject, b: JSONObject) => (a.index ?? 0) - (b.index ?? 0));
  return {
    requestId: d.request_id,
    results: items.map((r: JSONObject) => result(r, d.request_id)),
    succeeded: d.succeeded,
    failed: d.failed,
    raw: d,
  };
}

export function finalChunk(d: JSONObject): FinalChunk {
  return {
    type: "usage",
    model: d.model,
    provider: d.provider,
    usage: usage(d.usage),
    finishReason: d.finish_reason ?? null,
    latencyMs: d.latency_ms,
    requestId: d.request_id,
  };
}

export function modelList(d: JSONObject): ModelList {
  return {
    models: d.models.map(
      (m: JSONObject): ModelInfo => ({
        name: m.name,
        provider: m.provider,
        model: m.model,
        enabled: m.enabled,
        health: m.health,
        circuitState: m.circuit_state,
        reason: m.reason ?? null,
        price: { inputPer1k: String(m.price?.input_per_1k ?? "0"), outputPer1k: String(m.price?.output_per_1k ?? "0") },
        capabilities: m.capabilities ?? [],
        contextWindow: m.context_window ?? null,
        maxTokens: m.max_tokens ?? null,
        weight: m.weight ?? 1,
        raw: m,
      }),
    ),
    routes: d.routes.map((r: JSONObject): RouteInfo => ({
      name: r.name,
      algorithm: r.algorithm,
      targets: r.targets,
      fallbacks: r.fallbacks ?? [],
      weights: r.weights ?? r.targets.map(() => 1),
    })),
  };
}

export function modelStatus(d: JSONObject): ModelStatus {
  return {
    name: d.name,
    provider: d.provider,
    enabled: d.enabled,
    available: d.available,
    health: d.health,
    circuitState: d.circuit_state,
    source: d.source ?? "config",
    requestsTotal: d.requests_total ?? 0,
    errorsTotal: d.errors_total ?? 0,
    weight: d.weight ?? 1,
    raw: d,
  };
}

export function feedEvent(d: unknown): FeedEvent {
  const o: JSONObject = d && typeof d === "object" && !Array.isArray(d) ? (d as JSONObject) : { data: d };
  return { channel: String(o.channel ?? o.type ?? ""), data: "data" in o ? o.data : o, raw: o };
}
