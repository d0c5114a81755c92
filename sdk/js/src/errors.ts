// Errors: one class per API error type, each carrying status, code, request id and retryAfter.

export class AimmError extends Error {
  override name = "AimmError";
}

/** The gateway could not be reached, or the connection broke before an answer. */
export class APIConnectionError extends AimmError {
  override name = "APIConnectionError";
}

/** The client-side timeout expired. */
export class APITimeoutError extends APIConnectionError {
  override name = "APITimeoutError";
}

export interface APIErrorInit {
  status?: number;
  type?: string | null;
  code?: string | null;
  param?: string | null;
  requestId?: string | null;
  retryAfter?: number | null;
  body?: unknown;
  duringStream?: boolean;
}

/** The gateway answered with an error (HTTP status >= 400, or an error event mid-stream). */
export class APIError extends AimmError {
  override name = "APIError";
  static defaultStatus = 500;
  readonly status: number;
  readonly type: string | null;
  readonly code: string | null;
  readonly param: string | null;
  readonly requestId: string | null;
  /** Seconds the server asked to wait (Retry-After / retry-after-ms). */
  readonly retryAfter: number | null;
  readonly body: unknown;
  /** The stream had started (HTTP 200) when this error arrived. */
  readonly duringStream: boolean;

  constructor(message: string, init: APIErrorInit = {}) {
    super(message);
    this.status = init.status ?? (this.constructor as typeof APIError).defaultStatus;
    this.type = init.type ?? null;
    this.code = init.code ?? null;
    this.param = init.param ?? null;
    this.requestId = init.requestId ?? null;
    this.retryAfter = init.retryAfter ?? null;
    this.body = init.body;
    this.duringStream = init.duringStream ?? false;
  }
}

type APIErrorClass = typeof APIError;

/** One API error class: its name (the instances' `name` too), default status and parent. */
function defineError(errorName: string, defaultStatus: number, parent: APIErrorClass = APIError): APIErrorClass {
  const cls = class extends parent {
    static override defaultStatus = defaultStatus;
    override name = errorName;
  };
  Object.defineProperty(cls, "name", { value: errorName });
  return cls;
}

// The classes differ only in these figures; each name is a value (for `instanceof`) and a type.
export const InvalidRequestError = defineError("InvalidRequestError", 400);
export type InvalidRequestError = APIError;
export const NotFoundError = defineError("NotFoundError", 404, InvalidRequestError);
export type NotFoundError = InvalidRequestError;
export const AuthenticationError = defineError("AuthenticationError", 401);
export type AuthenticationError = APIError;
export const PermissionDeniedError = defineError("PermissionDeniedError", 403);
export type PermissionDeniedError = APIError;
export const RateLimitError = defineError("RateLimitError", 429);
export type RateLimitError = APIError;
/** A budget blocked the call (429, type insufficient_quota). */
export const InsufficientQuotaError = defineError("InsufficientQuotaError", 429, RateLimitError);
export type InsufficientQuotaError = RateLimitError;
export const UpstreamError = defineError("UpstreamError", 502);
export type UpstreamError = APIError;
export const UpstreamTimeoutError = defineError("UpstreamTimeoutError", 504);
export type UpstreamTimeoutError = APIError;
export const ServiceUnavailableError = defineError("ServiceUnavailableError", 503);
export type ServiceUnavailableError = APIError;
export const InternalServerError = defineError("InternalServerError", 500);
export type InternalServerError = APIError;

/** The class of each error `type` the gateway sends. */
const BY_TYPE: Record<string, APIErrorClass> = {
  invalid_request_error: InvalidRequestError,
  authentication_error: AuthenticationError,
  permission_error: PermissionDeniedError,
  rate_limit_error: RateLimitError,
  insufficient_quota: InsufficientQuotaError,
  upstream_error: UpstreamError,
  timeout_error: UpstreamTimeoutError,
  service_unavailable: ServiceUnavailableError,
  server_error: InternalServerError,
};
/** For a body without a known type: the class whose default status it is (429: RateLimitError). */
const BY_STATUS: Record<number, APIErrorClass> = Object.fromEntries(
  [
    InvalidRequestError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
    ServiceUnavailableError,
    UpstreamTimeoutError,
  ].map((cls) => [cls.defaultStatus, cls]),
);

export function errorClass(type: string | null | undefined, status: number | undefined): APIErrorClass {
  if (status === 404 && (type == null || type === "invalid_request_error")) return NotFoundError;
  if (type && type in BY_TYPE) return BY_TYPE[type]!;
  if (status !== undefined && status in BY_STATUS) return BY_STATUS[status]!;
  return status === undefined || status >= 500 ? InternalServerError : APIError;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

/** The exception for an OpenAI-shaped error body (or any body, for non-gateway failures). */
export function errorFromBody(body: unknown, init: Omit<APIErrorInit, "type" | "code" | "param" | "body">): APIError {
  const err = body && typeof body === "object" ? (body as Record<string, unknown>).error : undefined;
  if (!err || typeof err !== "object") {
    const text = typeof body === "string" && body ? body.slice(0, 300) : `HTTP ${init.status}`;
    return new (errorClass(null, init.status))(text, { ...init, body });
  }
  const e = err as Record<string, unknown>;
  const type = str(e.type);
  const cls = errorClass(type, init.status);
  return new cls(str(e.message) ?? `HTTP ${init.status}`, {
    ...init,
    type,
    code: str(e.code),
    param: str(e.param),
    body,
  });
}
