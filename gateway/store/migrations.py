"""Versioned schema migrations, applied in order by `aimm db upgrade` (and at start for SQLite).

Each migration is a list of statements valid in both SQLite and PostgreSQL (the dialects differ
only where a `{name}` placeholder says so). Never edit a released migration: add the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

DIALECT = {
    "sqlite": {"bigint": "INTEGER", "double": "REAL", "text": "TEXT"},
    "postgres": {"bigint": "BIGINT", "double": "DOUBLE PRECISION", "text": "TEXT"},
}


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]

    def render(self, dialect: str) -> list[str]:
        return [s.format(**DIALECT[dialect]) for s in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "requests, attempts, daily rollups",
        (
            """CREATE TABLE ai_requests (
                ts_ms {bigint} NOT NULL, request_id {text} NOT NULL, api {text} NOT NULL,
                key_name {text}, team {text}, namespace {text}, route {text}, requested {text} NOT NULL,
                model {text}, provider {text}, status INTEGER NOT NULL, error_kind {text},
                prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
                cost_units {bigint} NOT NULL, baseline_units {bigint} NOT NULL,
                latency_ms {double} NOT NULL, ttft_ms {double}, cache_hit INTEGER NOT NULL,
                attempts INTEGER NOT NULL, route_reason {text} NOT NULL)""",
            "CREATE INDEX ai_requests_ts ON ai_requests (ts_ms)",
            "CREATE INDEX ai_requests_model_ts ON ai_requests (model, ts_ms)",
            "CREATE INDEX ai_requests_key_ts ON ai_requests (key_name, ts_ms)",
            """CREATE TABLE ai_request_attempts (
                ts_ms {bigint} NOT NULL, request_id {text} NOT NULL, seq INTEGER NOT NULL,
                model {text} NOT NULL, provider {text} NOT NULL, outcome {text} NOT NULL,
                status INTEGER NOT NULL, latency_ms {double} NOT NULL, hedge INTEGER NOT NULL)""",
            "CREATE INDEX ai_request_attempts_ts ON ai_request_attempts (ts_ms)",
            """CREATE TABLE ai_usage_daily (
                day {text} NOT NULL, model {text} NOT NULL, provider {text} NOT NULL,
                key_name {text} NOT NULL, team {text} NOT NULL, route {text} NOT NULL,
                requests {bigint} NOT NULL, errors {bigint} NOT NULL, cache_hits {bigint} NOT NULL,
                prompt_tokens {bigint} NOT NULL, completion_tokens {bigint} NOT NULL,
                cost_units {bigint} NOT NULL, baseline_units {bigint} NOT NULL, latency_ms_sum {double} NOT NULL,
                PRIMARY KEY (day, model, provider, key_name, team, route))""",
            "CREATE TABLE ai_store_meta (name {text} PRIMARY KEY, value {text} NOT NULL)",
        ),
    ),
    Migration(
        2,
        "audit trail (hash-chained, one chain per writing process)",
        (
            """CREATE TABLE ai_audit (
                chain {text} NOT NULL, seq {bigint} NOT NULL, ts {double} NOT NULL,
                who {text}, role {text}, action {text} NOT NULL, target {text}, outcome {text} NOT NULL,
                request_id {text}, detail {text}, prev {text} NOT NULL, hash {text} NOT NULL,
                PRIMARY KEY (chain, seq))""",
            "CREATE INDEX ai_audit_ts ON ai_audit (ts)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS ai_schema_version (version INTEGER NOT NULL)"


def pending(current: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > current]
