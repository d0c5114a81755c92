"""SQL shared by both backends, with the placeholder style as a parameter (`?` or `$n`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aimm_gateway.store.audit_rows import AUDIT_COLUMNS, AuditFilter
from aimm_gateway.store.rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS

Placeholder = Callable[[int], str]  # 1-based position -> "?" or "$1"


def qmark(_: int) -> str:
    return "?"


def dollar(i: int) -> str:
    return f"${i}"


def insert_requests(ph: Placeholder) -> str:
    marks = ", ".join(ph(i + 1) for i in range(len(REQUEST_COLUMNS)))
    return f"INSERT INTO ai_requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({marks})"


def insert_attempts(ph: Placeholder) -> str:
    marks = ", ".join(ph(i + 1) for i in range(len(ATTEMPT_COLUMNS)))
    return f"INSERT INTO ai_request_attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({marks})"


def insert_audit(ph: Placeholder) -> str:
    marks = ", ".join(ph(i + 1) for i in range(len(AUDIT_COLUMNS)))
    return f"INSERT INTO ai_audit ({', '.join(AUDIT_COLUMNS)}) VALUES ({marks})"


def fetch_audit(ph: Placeholder, after_chain: str, after_seq: int, limit: int) -> tuple[str, list[object]]:
    """One page of audit rows in (chain, seq) order after the given position (keyset paging)."""
    sql = (
        f"SELECT {', '.join(AUDIT_COLUMNS)} FROM ai_audit WHERE chain > {ph(1)} OR (chain = {ph(2)} AND seq > {ph(3)})"
        f" ORDER BY chain, seq LIMIT {int(limit)}"
    )
    return sql, [after_chain, after_chain, after_seq]


def list_audit(ph: Placeholder, f: AuditFilter, limit: int) -> tuple[str, list[object]]:
    """Audit rows matching the filter, newest first (ts, then chain and seq), one page (keyset paging)."""
    where = _Where(ph)
    if f.since is not None:
        where.add("ts", ">=", f.since)
    if f.until is not None:
        where.add("ts", "<", f.until)
    for column, value in (("who", f.who), ("action", f.action), ("outcome", f.outcome)):
        if value is not None:
            where.add(column, "=", value)
    if f.before is not None:
        ts, chain, seq = f.before
        where.args += [ts, ts, chain, chain, seq]
        t1, t2, c1, c2, s1 = (ph(len(where.args) - i) for i in range(4, -1, -1))
        where.parts.append(f"(ts < {t1} OR (ts = {t2} AND (chain < {c1} OR (chain = {c2} AND seq < {s1}))))")
    cols = ", ".join(AUDIT_COLUMNS)
    sql = f"SELECT {cols} FROM ai_audit WHERE {where.sql()} ORDER BY ts DESC, chain DESC, seq DESC LIMIT {int(limit)}"
    return sql, where.args


def audit_at(ph: Placeholder, positions: Sequence[tuple[str, int]]) -> tuple[str, list[object]]:
    """The audit rows at these (chain, seq) positions (those that exist)."""
    args: list[object] = []
    parts = []
    for chain, seq in positions:
        args += [chain, seq]
        parts.append(f"(chain = {ph(len(args) - 1)} AND seq = {ph(len(args))})")
    return f"SELECT {', '.join(AUDIT_COLUMNS)} FROM ai_audit WHERE {' OR '.join(parts) or '1=0'}", args


def audit_chain_starts(ph: Placeholder, chains: Sequence[str]) -> tuple[str, list[object]]:
    """Each chain's first seq in the table (where a chain's verification starts)."""
    marks = ", ".join(ph(i + 1) for i in range(len(chains))) or "NULL"
    return f"SELECT chain, MIN(seq) FROM ai_audit WHERE chain IN ({marks}) GROUP BY chain", list(chains)


@dataclass(frozen=True)
class Scope:
    """Which requests a budget counts; an empty list does not narrow."""

    models: Sequence[str] = ()
    key_names: Sequence[str] = ()
    routes: Sequence[str] = ()
    teams: Sequence[str] = ()
    namespaces: Sequence[str] = ()


@dataclass
class _Where:
    ph: Placeholder
    parts: list[str] = field(default_factory=list)
    args: list[object] = field(default_factory=list)

    def add(self, column: str, op: str, value: object) -> None:
        self.args.append(value)
        self.parts.append(f"{column} {op} {self.ph(len(self.args))}")

    def any_of(self, column: str, values: Sequence[str]) -> None:
        if not values:
            return
        marks = []
        for v in values:
            self.args.append(v)
            marks.append(self.ph(len(self.args)))
        self.parts.append(f"{column} IN ({', '.join(marks)})")

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "1=1"


def spend(ph: Placeholder, since_ms: int, until_ms: int, scope: Scope) -> tuple[str, list[object]]:
    where = _Where(ph)
    where.add("ts_ms", ">=", since_ms)
    where.add("ts_ms", "<", until_ms)
    where.any_of("model", scope.models)
    where.any_of("key_name", scope.key_names)
    where.any_of("route", scope.routes)
    where.any_of("team", scope.teams)
    where.any_of("namespace", scope.namespaces)
    return f"SELECT COALESCE(SUM(cost_units), 0) FROM ai_requests WHERE {where.sql()}", where.args


ANALYTICS_COLUMNS = (
    "ts_ms", "key_name", "team", "route", "model", "provider", "status", "prompt_tokens", "completion_tokens",
    "cost_units", "baseline_units", "latency_ms", "cache_hit",
)  # fmt: skip


def fetch(ph: Placeholder, since_ms: int, until_ms: int) -> tuple[str, list[object]]:
    sql = f"SELECT {', '.join(ANALYTICS_COLUMNS)} FROM ai_requests WHERE ts_ms >= {ph(1)} AND ts_ms < {ph(2)}"
    return sql + " ORDER BY ts_ms", [since_ms, until_ms]


def rollup(ph: Placeholder) -> list[str]:
    """Recompute one day's rollup (args: day, since_ms, until_ms): delete, then aggregate again."""
    return [
        f"DELETE FROM ai_usage_daily WHERE day = {ph(1)}",
        f"""INSERT INTO ai_usage_daily (day, model, provider, key_name, team, route, requests, errors,
                cache_hits, prompt_tokens, completion_tokens, cost_units, baseline_units, latency_ms_sum)
            SELECT CAST({ph(1)} AS TEXT), COALESCE(model, ''), COALESCE(provider, ''), COALESCE(key_name, ''),
                COALESCE(team, ''), COALESCE(route, ''), COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
                SUM(cache_hit), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_units), SUM(baseline_units),
                SUM(latency_ms)
            FROM ai_requests WHERE ts_ms >= {ph(2)} AND ts_ms < {ph(3)}
            GROUP BY COALESCE(model, ''), COALESCE(provider, ''), COALESCE(key_name, ''), COALESCE(team, ''),
                COALESCE(route, '')""",
    ]


ROLLUP_COLUMNS = (
    "day", "model", "provider", "key_name", "team", "route", "requests", "errors", "cache_hits",
    "prompt_tokens", "completion_tokens", "cost_units", "baseline_units", "latency_ms_sum",
)  # fmt: skip


def fetch_rollups(ph: Placeholder) -> str:
    return f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM ai_usage_daily WHERE day >= {ph(1)} AND day < {ph(2)} ORDER BY day"
