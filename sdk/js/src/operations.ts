// Every public client method and the (HTTP method, path) it calls. The contract test checks this
// table against the gateway's /openapi.json in both directions.
export const OPERATIONS = {
  query: ["POST", "/api/v1/query"],
  queryMultiple: ["POST", "/api/v1/query/multiple"],
  stream: ["POST", "/api/v1/query/stream"],
  batch: ["POST", "/api/v1/batch"],
  feedback: ["POST", "/api/v1/feedback"],
  models: ["GET", "/api/v1/models"],
  metrics: ["GET", "/api/v1/metrics"],
  stats: ["GET", "/api/v1/stats"],
  usage: ["GET", "/api/v1/analytics/usage"],
  topConsumers: ["GET", "/api/v1/analytics/top"],
  report: ["GET", "/api/v1/analytics/report"],
  budgets: ["GET", "/api/v1/budgets"],
  subscribe: ["GET", "/api/v1/ws"],
  addModel: ["POST", "/admin/models"],
  modelsStatus: ["GET", "/admin/models/status"],
  updateModel: ["PATCH", "/admin/models/{name}"],
  enableModel: ["PATCH", "/admin/models/{name}"],
  disableModel: ["PATCH", "/admin/models/{name}"],
  setModelWeight: ["PATCH", "/admin/models/{name}"],
  createKey: ["POST", "/admin/keys"],
  listKeys: ["GET", "/admin/keys"],
  revokeKey: ["DELETE", "/admin/keys/{key_id}"],
  rotateKey: ["POST", "/admin/keys/{key_id}/rotate"],
  audit: ["GET", "/admin/audit"],
  health: ["GET", "/health"],
  ready: ["GET", "/ready"],
} as const satisfies Record<string, readonly [string, string]>;

export type OperationName = keyof typeof OPERATIONS;

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

export interface Call {
  method: string;
  path: string;
  body?: unknown;
  query?: Record<string, string>;
  /** Sent with the admin token when one is configured. */
  admin?: boolean;
  /** Safe to repeat; by default decided by the HTTP method. */
  idempotent?: boolean;
}

export function call(name: OperationName, extra: Omit<Call, "method" | "path"> = {}, pathArgs: Record<string, string> = {}): Call {
  const [method, template] = OPERATIONS[name];
  const path = template.replace(/\{(\w+)\}/g, (_, key: string) => encodeURIComponent(pathArgs[key] ?? ""));
  return { method, path, ...extra };
}

export const safeToRepeat = (c: Call): boolean => c.idempotent ?? IDEMPOTENT.has(c.method);
