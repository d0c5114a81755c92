"""The gateway configuration: the one document a gateway runs from.

A YAML file for `aimm gateway serve --config FILE`; in a cluster the operator writes the same
schema into a ConfigMap. Secrets are referenced (env var or file), never inlined.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from aimm_gateway.presets import PRESETS, PROVIDER_NAMES, preset_for
from aimm_gateway.security.identity import Role

ALGORITHMS = ("round_robin", "weighted", "least_connections", "response_time", "intelligent", "adaptive")
Algorithm = Literal["round_robin", "weighted", "least_connections", "response_time", "intelligent", "adaptive"]


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, so a typo names its field."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Strict):
    """Where a secret lives. Exactly one of `env` or `file`; the value never appears in config."""

    env: str | None = Field(None, description="Name of an environment variable holding the secret.")
    file: str | None = Field(None, description="Path of a file holding the secret (e.g. a mounted Secret).")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of 'env' or 'file'")
        return self

    def resolve(self) -> str | None:
        """The secret's value, or None when the variable or file is absent."""
        if self.env is not None:
            value = os.environ.get(self.env)
            return value.strip() if value else None
        assert self.file is not None
        try:
            return Path(self.file).read_text().strip() or None
        except OSError:
            return None

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


class Capability(StrEnum):
    CHAT = "chat"
    STREAMING = "streaming"
    TOOLS = "tools"
    VISION = "vision"
    JSON = "json"
    EMBEDDINGS = "embeddings"


class Pricing(Strict):
    """USD per 1,000 tokens. Decimal, so costs add up exactly."""

    input_per_1k: Decimal = Field(Decimal(0), ge=0, description="USD per 1k input (prompt) tokens.")
    output_per_1k: Decimal = Field(Decimal(0), ge=0, description="USD per 1k output (completion) tokens.")
    cached_input_per_1k: Decimal | None = Field(
        None, ge=0, description="USD per 1k cached input tokens; defaults to the input price."
    )


class Timeouts(Strict):
    connect_s: float = Field(5.0, gt=0, description="TCP/TLS connect timeout.")
    first_byte_s: float = Field(60.0, gt=0, description="Time to the first response byte (headers, first chunk).")
    total_s: float = Field(600.0, gt=0, description="Whole non-streaming request.")
    stream_idle_s: float = Field(60.0, gt=0, description="Longest silence between two stream chunks.")


class CircuitBreakerSettings(Strict):
    failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open the circuit.")
    failure_rate: float = Field(0.5, gt=0, le=1, description="Failure share over the window that opens it.")
    window_s: float = Field(60.0, gt=0, description="Window for the failure rate.")
    min_requests: int = Field(20, ge=1, description="Requests in the window before the rate counts.")
    timeout_s: float = Field(60.0, gt=0, description="How long the circuit stays open.")
    half_open_requests: int = Field(1, ge=1, description="Probe requests admitted while half-open.")
    trip_on_429: bool = Field(False, description="Count upstream 429 as a failure.")


class RetrySettings(Strict):
    attempts: int = Field(3, ge=1, le=10, description="Total attempts per request, across targets.")
    backoff_initial_s: float = Field(0.1, ge=0)
    backoff_max_s: float = Field(5.0, ge=0)
    budget_ratio: float = Field(0.2, ge=0, le=1, description="Retries allowed as a share of requests.")


class MockSettings(Strict):
    """Behaviour of a `provider: mock` model (served in-process, no socket)."""

    latency_ms: float = Field(0.0, ge=0)
    stream_chunks: int = Field(8, ge=1)
    chunk_interval_ms: float = Field(0.0, ge=0)


class AzureSettings(Strict):
    """Azure OpenAI: `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`."""

    deployment: str | None = Field(None, description="Deployment name; defaults to the model's upstream id.")
    api_version: str = Field("2024-10-21", description="The `api-version` query parameter.")
    auth: Literal["api-key", "entra"] = Field(
        "api-key", description="`api-key` header, or an Entra ID bearer token (api_key then holds the token)."
    )


class BedrockSettings(Strict):
    """AWS Bedrock Converse API, signed with SigV4."""

    region: str = Field(..., min_length=1, description="AWS region, e.g. us-east-1.")
    access_key_id: SecretRef = Field(SecretRef(env="AWS_ACCESS_KEY_ID"), description="AWS access key id.")
    secret_access_key: SecretRef = Field(SecretRef(env="AWS_SECRET_ACCESS_KEY"), description="AWS secret key.")
    session_token: SecretRef | None = Field(None, description="Session token for temporary credentials.")


class VertexSettings(Strict):
    """Google Vertex AI (Gemini and Anthropic-on-Vertex), with a service-account token."""

    project: str = Field(..., min_length=1, description="Google Cloud project id.")
    location: str = Field("us-central1", description="Region, or `global`.")
    publisher: Literal["google", "anthropic"] = Field("google", description="Model publisher on Vertex.")
    credentials: SecretRef | None = Field(
        None, description="Service-account JSON (file or env); default: application default credentials."
    )


class ModelRateLimits(Strict):
    """Upstream limits for one model (compiled from the AIModel CRD's `rateLimits`)."""

    requests_per_minute: int | None = Field(None, ge=1, description="Requests per minute sent to this model.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Tokens per minute sent to this model.")


class ModelConfig(Strict):
    name: str = Field(..., min_length=1, description="Name clients ask for.")
    provider: str = Field(
        ...,
        description="Provider preset (wire format, base URL, auth).",
        json_schema_extra={"enum": list(PROVIDER_NAMES)},
    )
    model: str | None = Field(None, description="Upstream model id; defaults to `name`.")
    base_url: str | None = Field(None, description="Upstream base URL; defaults to the provider preset's.")
    api_key: SecretRef | None = Field(None, description="Where the upstream API key lives.")
    pricing: Pricing = Pricing()
    context_window: int = Field(128_000, gt=0, description="Max prompt + output tokens.")
    max_output_tokens: int = Field(4096, gt=0)
    capabilities: frozenset[Capability] = frozenset(
        {Capability.CHAT, Capability.STREAMING, Capability.TOOLS, Capability.JSON}
    )
    quality: float = Field(0.5, ge=0, le=1, description="Relative answer quality used by intelligent routing.")
    enabled: bool = True
    weight: float = Field(1.0, ge=0)
    priority: int = Field(0, description="Lower is preferred.")
    timeouts: Timeouts = Timeouts()
    circuit_breaker: CircuitBreakerSettings | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Extra non-secret headers for the upstream.")
    mock: MockSettings = MockSettings()
    azure: AzureSettings | None = Field(None, description="Azure OpenAI settings (provider: azure).")
    bedrock: BedrockSettings | None = Field(None, description="AWS Bedrock settings (provider: bedrock).")
    vertex: VertexSettings | None = Field(None, description="Vertex AI settings (provider: vertex).")
    rate_limits: ModelRateLimits | None = Field(None, description="Requests/tokens per minute for this model.")

    @field_serializer("capabilities")
    def _sorted_capabilities(self, caps: frozenset[Capability]) -> list[str]:
        # Sorted so a dump (and so the config hash) is identical in every process.
        return sorted(c.value for c in caps)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown provider {value!r}; choose one of: {', '.join(PROVIDER_NAMES)}")
        return value

    @model_validator(mode="after")
    def _provider_settings(self) -> ModelConfig:
        if self.base_url is None and preset_for(self.provider).base_url_required:
            raise ValueError(f"provider {self.provider!r} has no default endpoint: set base_url")
        if self.provider == "bedrock" and self.bedrock is None:
            raise ValueError("provider 'bedrock' needs `bedrock: {region: ...}`")
        if self.provider == "vertex" and self.vertex is None:
            raise ValueError("provider 'vertex' needs `vertex: {project: ...}`")
        return self

    @property
    def upstream_model(self) -> str:
        return self.model or self.name

    @property
    def endpoint(self) -> str | None:
        """The upstream base URL: explicit, else the preset's, else derived (Bedrock, Vertex)."""
        if self.base_url:
            return self.base_url.rstrip("/")
        preset_url = preset_for(self.provider).base_url
        if preset_url:
            return preset_url
        if self.bedrock is not None:
            return f"https://bedrock-runtime.{self.bedrock.region}.amazonaws.com"
        if self.vertex is not None:
            location = self.vertex.location
            host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
            return f"https://{host}"
        return None


class RouteTarget(Strict):
    model: str = Field(..., description="A model name from `models`.")
    weight: float = Field(1.0, ge=0)
    priority: int = Field(0, description="Lower is preferred.")


class IntelligentFactors(Strict):
    cost: float = Field(0.3, ge=0)
    performance: float = Field(0.4, ge=0)
    quality: float = Field(0.3, ge=0)
    availability: float = Field(0.0, ge=0)


class HedgingSettings(Strict):
    enabled: bool = False
    delay_s: float | None = Field(None, gt=0, description="Fixed hedge delay; default the route's p95.")
    max_hedges: int = Field(1, ge=1, le=3)


class RouteConfig(Strict):
    name: str = Field(..., min_length=1, description="Name clients call, e.g. `smart`.")
    targets: list[RouteTarget] = Field(..., min_length=1)
    algorithm: Algorithm = "round_robin"
    fallbacks: list[str] = Field(default_factory=list, description="Models tried, in order, after the targets.")
    factors: IntelligentFactors = IntelligentFactors()
    exploration: float = Field(0.1, ge=0, le=1, description="Share of traffic the adaptive algorithm explores.")
    retries: RetrySettings | None = None
    circuit_breaker: CircuitBreakerSettings | None = None
    timeouts: Timeouts | None = None
    hedging: HedgingSettings = HedgingSettings()
    queue_timeout_s: float = Field(0.0, ge=0, description="Wait this long for a target when all are open.")

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> RouteConfig:
        if all(t.weight == 0 for t in self.targets):
            raise ValueError("targets: weights must not all be zero")
        return self


class LimitValues(Strict):
    """One level's limits; an unset field means no limit of that kind at that level."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1, description="Prompt estimate reserved, settled with usage.")
    concurrent_requests: int | None = Field(None, ge=1)


class ApiKey(Strict):
    name: str = Field(..., description="Who holds the key (team, app); shown in logs, never the key.")
    key: SecretRef
    role: Role = Field(Role.DEVELOPER, description="admin | developer | user | viewer (docs/security.md).")
    owner: str | None = Field(None, description="Person or team that owns the key.")
    team: str | None = Field(
        None, min_length=1, max_length=63, description="Team label: team-scoped budgets and usage rows carry it."
    )
    models: list[str] = Field(default_factory=list, description="Globs over model/route names; empty = all.")
    limits: LimitValues = Field(default_factory=LimitValues, description="Per-key limits (override limits.per_key).")
    budget_usd: Decimal | None = Field(
        None, gt=0, description="Optional spending cap for this key per calendar month (UTC); over it: 429."
    )


class KeyStoreSettings(Strict):
    path: str | None = Field(
        None,
        description="JSON file holding keys created over the admin API (salted hashes only); unset = in memory. "
        "With state.redis the keys live in Redis (shared by every worker and replica) and no path is allowed.",
    )
    rotation_overlap_s: float = Field(86400.0, ge=0, description="Default time both old and new secret work.")


class JwtSettings(Strict):
    """Signed JWTs from an OIDC identity provider, verified against its JWKS."""

    issuer: str = Field(..., description="Expected `iss`.")
    audience: str = Field(..., description="Expected `aud`.")
    jwks_url: str = Field(..., description="Where the signing keys are published (fetched and cached).")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    role_claim: str = Field("role", description="Claim holding the role (string or list of strings).")
    role_map: dict[str, Role] = Field(default_factory=dict, description="Claim value -> role; unmapped: refused.")
    default_role: Role | None = Field(None, description="Role when no claim value maps; None refuses the token.")
    subject_claim: str = Field("sub", description="Claim naming the caller (identity name).")
    team_claim: str | None = Field(
        None, description="Claim holding the caller's team (a string, or a list whose first string is used)."
    )
    jwks_cache_s: float = Field(300.0, gt=0, description="How long fetched keys are reused.")
    leeway_s: float = Field(30.0, ge=0, description="Clock skew tolerated on exp/nbf/iat.")


class AuthSettings(Strict):
    enabled: bool = Field(True, description="Require credentials on every API call.")
    api_keys: list[ApiKey] = Field(default_factory=list)
    key_store: KeyStoreSettings | None = Field(None, description="Keys managed over the admin API.")
    jwt: JwtSettings | None = Field(None, description="Accept OIDC-signed JWTs as bearer tokens.")
    stats_without_credentials: bool = Field(
        False,
        description="Serve GET /api/v1/stats and /api/v1/budgets (aggregates, scrubbed errors) to callers without "
        "credentials: for a poller that has none yet (the operator). Off: the viewer role is required.",
    )


class SecretStoreSettings(Strict):
    path: str = Field(..., description="JSON file of provider keys encrypted with AES-256-GCM.")
    kek: SecretRef = Field(..., description="Key-encryption key (32 bytes, base64 or hex).")
    previous_kek: SecretRef | None = Field(None, description="Set during KEK rotation: the store is re-encrypted.")


class SecretRefAllowList(Strict):
    """Which `{env}`/`{file}` references a model added over the admin API may use (none by default)."""

    env_prefixes: list[str] = Field(default_factory=list, description="e.g. AIMM_UPSTREAM_")
    file_dirs: list[str] = Field(default_factory=list, description="e.g. /var/run/secrets/aimm/")


class AdminSettings(Strict):
    token: SecretRef | None = Field(None, description="Bearer token for /admin; without one admin is off.")
    secret_store: SecretStoreSettings | None = Field(None, description="Encrypted provider keys set over /admin.")
    secret_refs: SecretRefAllowList = Field(default_factory=SecretRefAllowList)


class LimitsSettings(Strict):
    """Rate limits at three levels; counters live in the state layer (in-process or Redis)."""

    global_: LimitValues = Field(default_factory=LimitValues, alias="global")
    per_key: LimitValues = Field(default_factory=LimitValues, description="Default for every key / JWT subject.")
    per_ip: LimitValues = Field(default_factory=LimitValues)
    auth_failures_per_minute: int = Field(30, ge=1, description="Failed authentications per client IP.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed (e.g. the ingress)."
    )
    fail_mode: Literal["open", "closed"] = Field("open", description="State store unreachable: admit (open) or 503.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


GuardAction = Literal["off", "flag", "redact", "block"]


class GuardRule(Strict):
    """One injection/jailbreak heuristic: a regex and the score it adds (0-10 scale)."""

    id: str = Field(..., min_length=1)
    pattern: str = Field(..., min_length=1, description="Python regex, matched case-insensitively.")
    score: float = Field(..., gt=0, le=10)
    description: str = ""


class PiiPattern(Strict):
    id: str = Field(..., min_length=1)
    pattern: str = Field(..., min_length=1)


class GuardPolicy(Strict):
    injection: Literal["off", "flag", "block"] = "flag"
    block_score: float = Field(7.0, ge=0, le=10, description="Injection score at or above which `block` refuses.")
    pii: GuardAction = "off"
    pii_types: list[str] = Field(
        default_factory=lambda: ["email", "phone", "card", "iban", "ssn", "secret"],
        description="Detectors in use: email, phone, card, iban, ssn, secret, and custom ids.",
    )
    responses: bool = Field(False, description="Also check answers (streams included) with the PII action.")
    log_prompts: bool = Field(False, description="Opt in to prompt text in the audit trail.")


class GuardSettings(Strict):
    enabled: bool = Field(False, description="Run the guard stage at all.")
    default: GuardPolicy = Field(default_factory=GuardPolicy)
    routes: dict[str, GuardPolicy] = Field(default_factory=dict, description="Per model/route overrides.")
    extra_rules: list[GuardRule] = Field(default_factory=list, description="Added to the built-in rule set.")
    extra_pii: list[PiiPattern] = Field(default_factory=list, description="Custom PII detectors.")

    def policy_for(self, name: str) -> GuardPolicy:
        return self.routes.get(name, self.default)


class TlsSettings(Strict):
    cert_file: str
    key_file: str
    client_ca_file: str | None = Field(None, description="Verify client certificates against this CA bundle.")
    require_client_cert: bool = False
    reload_interval_s: float = Field(5.0, gt=0, description="How often cert/key files are checked for change.")


class CorsSettings(Strict):
    allow_origins: list[str] = Field(default_factory=list, description="Exact origins; empty = CORS off.")
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "PATCH", "DELETE"])
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-api-key", "x-request-id"]
    )
    max_age_s: int = Field(600, ge=0)


class ReloadSafety(Strict):
    max_drop_share: float = Field(0.25, ge=0, le=1, description="Largest share of models/routes one reload may drop.")
    allow_shrink: bool = Field(False, description="Set in the NEW file to accept a larger drop, auth off or no keys.")


class AuditSettings(Strict):
    sink: Literal["stdout", "file", "off"] = "stdout"
    path: str | None = Field(None, description="File for sink: file (JSON lines, hash-chained).")
    store: bool = Field(
        False,
        description="Also write every record to the usage store (table ai_audit, batched off the request path); "
        "needs `store:`. Read at start.",
    )


class HardeningSettings(Strict):
    tls: TlsSettings | None = None
    cors: CorsSettings = Field(default_factory=CorsSettings)
    security_headers: bool = True
    header_timeout_s: float = Field(10.0, gt=0, description="A connection must finish its headers this fast.")
    idle_timeout_s: float = Field(5.0, gt=0, description="Keep-alive connections idle longer are closed.")
    body_timeout_s: float = Field(
        30.0, gt=0, description="A request must finish sending its body this fast once read starts (else 408)."
    )
    max_messages: int = Field(2048, ge=1, description="Messages per chat request.")
    max_content_chars: int = Field(2_000_000, ge=1, description="Total characters across a request's messages.")
    json_thread_bytes: int = Field(256 * 1024, ge=0, description="Bodies larger than this are parsed off the loop.")
    reload: ReloadSafety = Field(default_factory=ReloadSafety)
    audit: AuditSettings = Field(default_factory=AuditSettings)


FailMode = Literal["open", "closed"]


class BudgetConfig(Strict):
    """A spending limit compiled from a CostBudget; enforced by the budget stage (reserve-then-settle)."""

    name: str
    limit_usd: Decimal = Field(..., gt=0)
    period: Literal["daily", "weekly", "monthly", "rolling"] = "monthly"
    rolling_hours: int | None = Field(
        None, gt=0, description="Window length for `period: rolling` (e.g. 24 = the last 24 hours)."
    )
    timezone: str = Field("UTC", description="IANA zone the calendar periods are aligned to.")
    models: list[str] = Field(default_factory=list, description="Models in scope; empty = all.")
    api_keys: list[str] = Field(default_factory=list, description="API key names in scope; empty = all.")
    routes: list[str] = Field(default_factory=list, description="Route names in scope; empty = all.")
    teams: list[str] = Field(default_factory=list, description="Caller team labels in scope; empty = all.")
    namespace: str | None = Field(
        None, description="Only requests served by a gateway in this namespace (server.namespace); unset = any."
    )
    thresholds: list[int] = Field(default_factory=lambda: [50, 80, 100])
    action: Literal["alert", "block", "downgrade"] = "alert"
    downgrade_to: str | None = None
    fail_mode: FailMode = Field("open", description="When shared state is unreachable: serve (open) or refuse.")
    webhook: SecretRef | None = Field(None, description="URL receiving threshold alerts (generic JSON).")
    slack_webhook: SecretRef | None = Field(None, description="Slack incoming-webhook URL for threshold alerts.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BudgetConfig:
        if (self.period == "rolling") != (self.rolling_hours is not None):
            raise ValueError("rolling_hours is required with period: rolling, and only then")
        if self.action == "downgrade" and not self.downgrade_to:
            raise ValueError("action: downgrade needs downgrade_to")
        return self


class RedisSettings(Strict):
    url: SecretRef = Field(..., description="redis:// or rediss:// URL (may hold a password, hence a secret).")
    timeout_ms: float = Field(50.0, gt=0, description="Bound on every call; past it the state is unavailable.")
    key_prefix: str = Field("aimm:", description="Prefix of every key (several gateways may share one Redis).")


class StateSettings(Strict):
    """Where counters, budgets and the response cache live: in-process, or Redis for a fleet."""

    redis: RedisSettings | None = Field(None, description="Shared state across replicas; unset = in-process.")
    cache_max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="In-process cache size bound.")


class PostgresSettings(Strict):
    dsn: SecretRef = Field(..., description="postgresql:// DSN (holds a password, hence a secret).")
    pool_size: int = Field(4, ge=1, le=64)


class StoreSettings(Strict):
    """The usage store: one row per request and per attempt, written in batches off the request path."""

    sqlite_path: str = Field("data/usage.db", description="Embedded store file (WAL mode) when postgres is unset.")
    postgres: PostgresSettings | None = Field(None, description="PostgreSQL for production; overrides sqlite.")
    batch_size: int = Field(500, ge=1, le=10_000, description="Rows per write.")
    flush_interval_s: float = Field(1.0, gt=0, description="Longest a row waits in memory.")
    queue_max: int = Field(100_000, ge=1, description="Rows held in memory; beyond, rows are dropped and counted.")
    retention_days: int = Field(30, ge=1, description="Raw rows older than this are deleted (rollups stay).")
    rollup_retention_days: int = Field(400, ge=1, description="Daily rollups older than this are deleted.")
    maintenance_interval_s: float = Field(3600.0, gt=0, description="How often rollup + retention run.")


class SemanticCacheSettings(Strict):
    """Reuse an answer to a *similar* request: embedding similarity over the prompt text."""

    embedding_model: str = Field(..., description="A model from `models` that serves embeddings.")
    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity at or above which an answer is reused.")
    max_entries: int = Field(256, ge=1, le=10_000, description="Prompts remembered per model/route and parameters.")


class CacheSettings(Strict):
    """Exact-match response cache (temperature 0, or when the request opts in)."""

    enabled: bool = False
    ttl_s: float = Field(3600.0, gt=0)
    max_entry_bytes: int = Field(1024 * 1024, gt=0, description="Larger answers are not cached.")
    opt_in_header: str = Field("x-aimm-cache", description="`x-aimm-cache: force` caches any temperature.")
    semantic: SemanticCacheSettings | None = Field(None, description="Similar-request cache; off unless set.")


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Larger request bodies get 413.")
    upstream_client: Literal["aiohttp", "httpx", "h1"] = Field(
        "h1", description="Upstream HTTP client: h1 costs the least CPU (docs/benchmarks.md)."
    )
    default_model: str | None = Field(None, description="Model or route used when a request names none.")
    reload_interval_s: float = Field(1.0, gt=0, description="How often the config file is checked for changes.")
    max_connections_per_upstream: int = Field(1000, gt=0)
    namespace: str | None = Field(
        None,
        max_length=63,
        description="The gateway's Kubernetes namespace (usage rows, namespace-scoped budgets); "
        "unset: the POD_NAMESPACE environment variable (the operator sets it), else none.",
    )


class AccessLogSettings(Strict):
    enabled: bool = Field(True, description="One JSON line per request on stdout (metadata only, never prompts).")
    sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of successful requests logged; failed requests are always logged."
    )


class TracingSettings(Strict):
    enabled: bool = Field(
        False, description="OpenTelemetry spans per request and upstream attempt; exported by OTLP as the OTEL_* "
        "environment variables say (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...).",
    )  # fmt: skip


class ObservabilitySettings(Strict):
    access_log: AccessLogSettings = AccessLogSettings()
    tracing: TracingSettings = TracingSettings()


class LiveSettings(Strict):
    """The live feed behind `GET /api/v1/ws` (see docs/console.md)."""

    subscriber_queue: int = Field(
        256, ge=1, le=100_000, description="Messages held for one subscriber; one further behind is dropped (1013)."
    )
    max_subscribers: int = Field(1000, ge=1, description="WebSocket subscribers per process; more get 503.")
    requests_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of requests sent on the `requests` channel (0 turns it off)."
    )
    metrics_interval_s: float = Field(1.0, ge=0.1, le=60, description="Seconds between `metrics` snapshots.")


class ConsoleSettings(Strict):
    enabled: bool = Field(False, description="Serve the web console at /console (its data needs an API key).")


class GatewayConfig(Strict):
    """Everything a gateway needs. Validation errors name the offending field."""

    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    admin: AdminSettings = AdminSettings()
    models: list[ModelConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    retries: RetrySettings = RetrySettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    budgets: list[BudgetConfig] = Field(default_factory=list)
    state: StateSettings = StateSettings()
    store: StoreSettings | None = Field(None, description="Usage store; unset = no usage history kept.")
    cache: CacheSettings = CacheSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    hardening: HardeningSettings = Field(default_factory=HardeningSettings)
    live: LiveSettings = LiveSettings()
    console: ConsoleSettings = ConsoleSettings()

    @model_validator(mode="after")
    def _references_resolve(self) -> GatewayConfig:
        names = [m.name for m in self.models]
        _require_unique("models", names)
        _require_unique("routes", [r.name for r in self.routes])
        known = set(names)
        for i, route in enumerate(self.routes):
            if route.name in known:
                raise ValueError(f"routes[{i}].name: {route.name!r} is also a model name")
            for j, target in enumerate(route.targets):
                if target.model not in known:
                    raise ValueError(f"routes[{i}].targets[{j}].model: unknown model {target.model!r}")
            for j, fallback in enumerate(route.fallbacks):
                if fallback not in known:
                    raise ValueError(f"routes[{i}].fallbacks[{j}]: unknown model {fallback!r}")
        semantic = self.cache.semantic
        if semantic is not None and semantic.embedding_model not in known:
            raise ValueError(f"cache.semantic.embedding_model: unknown model {semantic.embedding_model!r}")
        default = self.server.default_model
        if default is not None and default not in known and default not in {r.name for r in self.routes}:
            raise ValueError(f"server.default_model: unknown model or route {default!r}")
        if self.hardening.audit.store and self.store is None:
            raise ValueError("hardening.audit.store: needs the usage store (`store:`) to write to")
        key_store = self.auth.key_store
        if key_store is not None and key_store.path and self.state.redis is not None:
            raise ValueError(
                "auth.key_store.path: with state.redis the key store lives in Redis (shared by every worker "
                "and replica); remove the path"
            )
        return self


_ITEM_TYPES: dict[str, type[BaseModel]] = {"models": ModelConfig, "routes": RouteConfig, "budgets": BudgetConfig}


def _require_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: duplicate name {name!r}")
        seen.add(name)


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the field."""


def parse_config(data: Any, source: str = "<config>") -> GatewayConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    try:
        return GatewayConfig.model_validate({**data, **_validated_items(data)})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from None
    except _ItemError as exc:
        raise ConfigError(f"{source}: {exc}") from None


class _ItemError(Exception):
    pass


def _validated_items(data: dict[str, Any]) -> dict[str, list[Any]]:
    """Validate long lists (models, routes, budgets) one item at a time. Same result and messages
    as validating the whole document at once, but in many short steps: a reload validating in a
    worker thread then never holds the GIL long enough to stall the serving event loop."""
    out: dict[str, list[Any]] = {}
    for key, item_type in _ITEM_TYPES.items():
        items = data.get(key)
        if not isinstance(items, list):
            continue
        validated = []
        for i, item in enumerate(items):
            try:
                validated.append(item_type.model_validate(item))
            except ValidationError as exc:
                raise _ItemError(describe_validation_error(exc, prefix=(key, i))) from None
        out[key] = validated
    return out


def load_config(path: str | Path) -> GatewayConfig:
    """Read, parse and validate a config file: JSON (what the operator writes; orjson), else YAML
    (libyaml's C loader when PyYAML has it: the pure-Python one takes seconds on large configs).
    A gzip-compressed file is recognised by its magic bytes."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ConfigError(f"{path}: invalid gzip data: {exc}") from None
    if raw.lstrip()[:1] == b"{":
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON: {exc}") from None
    else:
        try:
            data = yaml.load(raw, Loader=_YAML_LOADER)  # a safe loader (C or Python)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_config(data, str(path))


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def describe_validation_error(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> str:
    """One line per problem, each naming its field path (`models[0].pricing.input_per_1k`)."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = format_loc(prefix + tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def config_dump(config: GatewayConfig) -> dict[str, Any]:
    """`config.model_dump(mode="json")`, field by field and list item by item: the same data, in
    short steps for the same reason as `_validated_items`."""
    data: dict[str, Any] = {}
    for name in GatewayConfig.model_fields:
        value = getattr(config, name)
        if isinstance(value, list):
            data[name] = [item.model_dump(mode="json") for item in value]
        elif isinstance(value, BaseModel):
            data[name] = value.model_dump(mode="json")
        else:  # None (an unset optional section) or a plain value
            data[name] = value
    return data


def dump_hash(data: dict[str, Any]) -> str:
    """The config hash of a `config_dump` (for a writer that has the dump already)."""
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def config_hash(config: GatewayConfig) -> str:
    """A short stable digest of a config: gateways report it, the operator compares it."""
    return dump_hash(config_dump(config))


def config_json_schema() -> dict[str, Any]:
    return GatewayConfig.model_json_schema(mode="validation")
