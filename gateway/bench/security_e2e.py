"""What authentication, rate limits and guards add to a request end to end (issue 9's target).

Gateways against the same mock upstream, interleaved at concurrency 1 (`interleaved.measure`):
auth only (what every gateway with keys pays today), auth + limits at all three levels (rpm,
tpm and concurrency) + the guard stage with in-process state, the same with Redis, and with a
budget on top. Target: in-process, the added p50 stays within 0.1 ms of the baseline; with
Redis, the limits cost one round trip before the call (`admit`), the settle one after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from aimm_gateway.bench import interleaved
from aimm_gateway.bench.interleaved import BODY, REDIS_STATE, ROUNDS, Row
from aimm_gateway.bench.security import limits

BASELINE = "auth only (today's baseline)"
IN_PROCESS = "auth + limits + guard (in-process)"
REDIS = "auth + limits + guard (Redis)"
BUDGET = "auth + limits + guard + budget (Redis)"
TARGET_MS = 0.1
GUARDS = {"enabled": True, "default": {"injection": "flag", "pii": "flag"}}


def variants(workdir: Path) -> dict[str, dict[str, Any]]:
    limited: dict[str, Any] = {"limits": limits(concurrency=True), "guards": GUARDS}
    budget = [{"name": "bench", "limit_usd": "1000000", "period": "monthly", "action": "block"}]
    return {
        BASELINE: {},
        IN_PROCESS: limited,
        REDIS: {**limited, "state": REDIS_STATE},
        BUDGET: {**limited, "state": REDIS_STATE, "store": {"sqlite_path": str(workdir / "s.db")}, "budgets": budget},
    }


def measure_security(openai_url: str, workdir: Path, duration: float, rounds: int = ROUNDS) -> list[Row]:
    body = orjson.dumps(BODY)
    return interleaved.measure(openai_url, workdir, variants(workdir), duration, body, "security", rounds)


def security_report(rows: list[Row], micro: dict[str, float] | None, rounds: int = ROUNDS) -> list[str]:
    """The report's section: the end-to-end table, the target check, Redis commands, the micro figures."""
    lines = [
        "",
        f"### Authentication, rate limits and guards on the hot path (concurrency 1, median of {rounds} "
        "interleaved rounds)",
        "",
        "Limits at all three levels (global, key, client IP), each with requests/min, tokens/min and "
        "concurrency; guard: injection + PII flag on the request.",
        "",
        *interleaved.table(rows, BASELINE),
        "",
    ]
    by_name = {r.name: r for r in rows}
    base, local = by_name[BASELINE], by_name.get(IN_PROCESS)
    if local is not None:
        added = local.p50_ms - base.p50_ms
        verdict = "within" if added <= TARGET_MS else "**over**"
        lines.append(
            f"- In-process: added p50 **{added:+.3f} ms**, {verdict} the {TARGET_MS} ms target; added CPU "
            f"**{local.cpu_us - base.cpu_us:+.0f} µs** per request."
        )
    for name in (REDIS, BUDGET):
        row = by_name.get(name)
        if row is not None:
            lines.append(
                f"- {name}: added p50 **{row.p50_ms - base.p50_ms:+.3f} ms** "
                f"(vs in-process: {row.p50_ms - local.p50_ms:+.3f} ms)"
                if local is not None
                else f"- {name}: added p50 **{row.p50_ms - base.p50_ms:+.3f} ms**"
            )
    redis = interleaved.redis_lines(rows)
    if redis:
        lines += [
            "",
            "Redis commands per request (sent by the gateway, counted with MONITOR outside the timed rounds; "
            "`ADMIT` = every window counter and concurrency slot of the limits, before the upstream call; "
            "`RELEASE` = slots back + tokens settled, after the answer, off the response path; `RESERVE`/`SETTLE` "
            "= the budget):",
            "",
            *redis,
        ]
    if micro:
        lines += ["", "In-process, per request (no HTTP; `aimm_gateway.bench.security`, best of 5):", ""]
        lines += [f"- {name}: {us:.1f} µs" for name, us in micro.items()]
    return lines
