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

export class InvalidRequestError extends APIError {
  override name = "InvalidRequestError";
  static override defaultStatus = 400;
}
export class NotFoundError extends InvalidRequestError {
  override name = "NotFoundError";
  static override defaultStatus = 404;
}
export class AuthenticationError extends APIError {
  override name = "AuthenticationError";
  static override defaultStatus = 401;
}
export class PermissionDeniedError extends APIError {
  override name = "PermissionDeniedError";
  static override defaultStatus = 403;
}
export class RateLimitError extends APIError {
  override name = "RateLimitError";
  static override defaultStatus = 429;
}
/** A budget blocked the call (429, type insufficient_quota). */
export class InsufficientQuotaError extends RateLimitError {
  override name = "InsufficientQuotaError";
}
export class UpstreamError extends APIError {
  override name = "UpstreamError";
  static override defaultStatus = 502;
}
export class UpstreamTimeoutError extends APIError {
  override name = "UpstreamTimeoutError";
  static override defaultStatus = 504;
}
export class ServiceUnavailableError extends APIError {
  override name = "ServiceUnavailableError";
  static override defaultStatus = 503;
}
export class InternalServerError extends APIError {
  override name = "InternalServerError";
  static override defaultStatus = 500;
}

const BY_TYPE: Record<string, typeof APIError> = {
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
const BY_STATUS: Record<number, typeof APIError> = {
  400: InvalidRequestError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  429: RateLimitError,
  502: UpstreamError,
  503: ServiceUnavailableError,
  504: UpstreamTimeoutError,
};

export function errorClass(type: string | null | undefined, status: number | undefined): typeof APIError {
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
