"""The markdown report of `aimm bench`: one function per section, ratios computed in the same run."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from aimm_gateway.bench.cpu import paired_ratios
from aimm_gateway.bench.loadgen import WrkResult
from aimm_gateway.telemetry.bench import BASELINE as TELEMETRY_BASELINE

ADDED_P99_LIMIT_MS = 10.0


def render(out: dict[str, Any]) -> str:
    lines: list[str] = []
    for section in (_header, _targets, _latency, _throughput, _ttft, _ab, _relay, _capacity, _routing, _micro):
        lines += section(out)
    lines += out.get("cost", [])  # the cost stages' section (aimm_gateway.bench.cost)
    return "\n".join(lines) + "\n"


def _header(out: dict[str, Any]) -> list[str]:
    return [
        "## Results",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; wrk -t1, {out['duration']:.0f} s per level; mock upstreams with no added "
        "latency; the gateway (one worker) and nginx (one worker) pinned to CPU 0, mocks, wrk and the streams "
        "client (uvloop, its own process) to CPU 1.",
        "",
    ]


def _gw(out: dict[str, Any]) -> dict[int, WrkResult]:
    results: dict[int, WrkResult] = out["variants"][0].results
    return results


def _targets(out: dict[str, Any]) -> list[str]:
    direct, nginx, gw = out["direct"], out["nginx"], _gw(out)
    top = max(out["levels"])
    lines = ["### Targets (issue 14), this run", "", "| target | result |", "|---|---|"]
    ab = out.get("ab") or {}
    cpu16 = ab.get("cpu16", {})
    ref = next((k for k in cpu16 if k.startswith("gateway@")), None)
    if ref is not None:
        now, before = cpu16["gateway (this tree)"], cpu16[ref]
        ratio, low, high = paired_ratios(now, before)
        lines.append(
            f"| CPU per request ≤ 50 % of before (A/B) | {now.us:.0f} µs vs {before.us:.0f} µs: **{ratio:.0%}** "
            f"(rounds {low:.0%}-{high:.0%}) |"
        )
    share = gw[top].rps / nginx[top].rps
    row = f"| ≥ 10 % of nginx RPS at concurrency {top} | measured {gw[top].rps:,.0f} vs {nginx[top].rps:,.0f}: "
    row += f"**{share:.1%}**"
    if "nginx" in cpu16:  # with the core to itself, RPS is the inverse of CPU per request
        now = cpu16["gateway (this tree)"].us
        row += f"; CPU-bound (nginx's CPU per request / ours): **{cpu16['nginx'].us / now:.1%}**"
    lines.append(row + " |")
    added, ng_added = gw[1].p50_ms - direct[1].p50_ms, nginx[1].p50_ms - direct[1].p50_ms
    lines.append(
        f"| added p50 at c=1 ≤ nginx's + 0.3 ms | {added:.3f} ms vs nginx {ng_added:.3f} ms: "
        f"**+{added - ng_added:.3f} ms** |"
    )
    relay = ab.get("relay", {})
    if ref is not None and ref in relay:
        now_r, before_r = relay["gateway (this tree)"], relay[ref]
        measured = now_r["chunks_per_s"] / before_r["chunks_per_s"]
        bound, low, high = paired_ratios(ab["relay_cpu"][ref], ab["relay_cpu"]["gateway (this tree)"])
        lines.append(
            f"| chunks relayed/s per worker ≥ 2 times before (A/B) | measured **{measured:.2f} times**; "
            f"CPU-bound (CPU per chunk before / now): **{bound:.2f} times** (rounds {low:.2f}-{high:.2f}) |"
        )
    cap = out.get("capacity")
    if cap:
        g, d, n = cap["gateway"], cap["direct"], cap["n"]
        per = (cap["peak"]["rss_kb"] - cap["idle"]["rss_kb"]) / max(1, cap["peak"]["open_at_sample"])
        lines.append(
            f"| {n:,} paced streams: added TTFT p99 ≤ 10 ms, added inter-chunk p99 ≤ 5 ms, ≤ 20 KB per stream | "
            f"errors {g['errors']}; TTFT p99 +{g['ttft_p99'] - d['ttft_p99']:.1f} ms; inter-chunk p99 "
            f"+{g['gap_p99'] - d['gap_p99']:.1f} ms; **{per:.1f} KB** per open stream |"
        )
        lines.append(f"| RSS after warm-up ≤ 80 MB per worker | **{cap['idle']['rss_kb'] / 1024:.1f} MB** |")
    return [*lines, ""]


def _latency(out: dict[str, Any]) -> list[str]:
    d1 = out["direct"][1]
    lines = [
        "### Added latency at concurrency 1 (minus direct to the mock)",
        "",
        "| path | p50 | added p50 | p99 | added p99 |",
        "|---|---|---|---|---|",
        f"| direct | {d1.p50_ms:.3f} ms | | {d1.p99_ms:.3f} ms | |",
    ]
    rows = [("nginx proxy_pass", out["nginx"][1])] + [(v.name, v.results[1]) for v in out["variants"]]
    for name, r in rows:
        lines.append(
            f"| {name} | {r.p50_ms:.3f} ms | **{r.p50_ms - d1.p50_ms:.3f} ms** | {r.p99_ms:.3f} ms | "
            f"{r.p99_ms - d1.p99_ms:.3f} ms |"
        )
    return [*lines, ""]


def _throughput(out: dict[str, Any]) -> list[str]:
    direct, nginx, variants = out["direct"], out["nginx"], out["variants"]
    names = ["nginx", *(v.name for v in variants)]
    lines = [
        "### Requests/s by concurrency (one worker each)",
        "",
        "| concurrency | direct RPS | direct p99 | " + " | ".join(f"{n} RPS | added p99" for n in names) + " |",
        "|" + "---|" * (3 + 2 * len(names)),
    ]
    for c in out["levels"]:
        cells = [nginx[c], *(v.results[c] for v in variants)]
        row = f"| {c} | {direct[c].rps:,.0f} | {direct[c].p99_ms:.2f} ms | "
        lines.append(row + " | ".join(f"{r.rps:,.0f} | {r.p99_ms - direct[c].p99_ms:.2f} ms" for r in cells) + " |")
    lines += ["", f"Highest RPS with added p99 ≤ {ADDED_P99_LIMIT_MS:.0f} ms and zero errors:", ""]
    for name, results in [("nginx", nginx), *((v.name, v.results) for v in variants)]:
        rps, at = _max_rps_within(direct, results)
        lines.append(f"- {name}: **{rps:,.0f} RPS** (at concurrency {at})")
    return [*lines, ""]


def _max_rps_within(direct: dict[int, WrkResult], gw: dict[int, WrkResult]) -> tuple[float, int | None]:
    best, at = 0.0, None
    for c, r in gw.items():
        if r.errors == 0 and r.p99_ms - direct[c].p99_ms <= ADDED_P99_LIMIT_MS and r.rps > best:
            best, at = r.rps, c
    return best, at


def _ttft(out: dict[str, Any]) -> list[str]:
    d = out["direct_ttft"]
    lines = ["### Time to first token at concurrency 1", "", "| path | p50 | p99 | added p50 |", "|---|---|---|---|"]
    lines.append(f"| direct | {d[0]:.3f} ms | {d[1]:.3f} ms | |")
    rows = [("nginx proxy_pass", out["nginx_ttft"])] + [(v.name, v.ttft) for v in out["variants"]]
    for name, t in rows:
        lines.append(f"| {name} | {t[0]:.3f} ms | {t[1]:.3f} ms | **{t[0] - d[0]:.3f} ms** |")
    return [*lines, ""]


def _ab(out: dict[str, Any]) -> list[str]:
    ab = out.get("ab")
    if not ab:
        return []
    nginx64 = ab["rps64"]["nginx"].rps
    lines = [
        "### CPU per request and requests/s, interleaved rounds (nginx, A/B)",
        "",
        "Median of interleaved rounds; CPU is the process's own (user + system) from `/proc/<pid>/stat` "
        "(nginx: its worker process).",
        "",
        "| contender | CPU per request (c=16) | RPS (c=16) | RPS (c=64) | share of nginx RPS (c=64) |",
        "|---|---|---|---|---|",
    ]
    for name, r in ab["cpu16"].items():
        r64 = ab["rps64"][name]
        lines.append(f"| {name} | {r.us:.0f} µs | {r.rps:,.0f} | {r64.rps:,.0f} | {r64.rps / nginx64:.1%} |")
    return [*lines, ""]


def _relay(out: dict[str, Any]) -> list[str]:
    relay = (out.get("ab") or {}).get("relay")
    if not relay:
        return []
    lines = [
        "### Stream relay throughput (pass-through, concurrency 16, interleaved)",
        "",
        "| gateway | events per reply | replies/s | chunks relayed/s | CPU per chunk | CPU-bound chunks/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in relay.items():
        lines.append(
            f"| {name} | {r['events']} | {r['replies_per_s']:,.0f} | **{r['chunks_per_s']:,.0f}** | "
            f"{r['cpu_us_per_chunk']:.1f} µs | {1e6 / r['cpu_us_per_chunk']:,.0f} |"
        )
    return [*lines, ""]


def ab_only(ab: dict[str, Any], command: str, rounds: int, duration: float) -> str:
    """`aimm bench --ab-only`: the interleaved tables and each gateway as a ratio of the first one."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = [
        f"Run {when}: `{command}` ({rounds} interleaved rounds of {duration:.0f} s per load); the gateways and nginx "
        f"pinned to CPU 0, the mocks and wrk to CPU 1; load average {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]
    return "\n".join(head + _ab({"ab": ab}) + _relay({"ab": ab}) + _ratios(ab)) + "\n"


def _ratios(ab: dict[str, Any]) -> list[str]:
    names = [n for n in ab["cpu16"] if n != "nginx"]
    if len(names) < 2:
        return []
    base = names[0]
    lines = [
        f"Ratios against {base}, same run, each the median of the rounds' own ratios (both measured in the "
        "same round), with their range (CPU per request: lower is better; chunks/s: CPU-bound, higher is better):",
        "",
        "| gateway | CPU per request | chunks/s (CPU-bound) | chunks/s (measured) |",
        "|---|---|---|---|",
    ]
    for name in names[1:]:
        r = ab["relay"][name]
        cpu, low, high = paired_ratios(ab["cpu16"][name], ab["cpu16"][base])
        # CPU-bound chunks/s is the inverse of CPU per chunk: the base's CPU over ours
        relay, r_low, r_high = paired_ratios(ab["relay_cpu"][base], ab["relay_cpu"][name])
        lines.append(
            f"| {name} | **{cpu:.0%}** ({low:.0%}-{high:.0%}) | **{relay:.2f} times** ({r_low:.2f}-{r_high:.2f}) | "
            f"{r['chunks_per_s'] / ab['relay'][base]['chunks_per_s']:.2f} times |"
        )
    return [*lines, ""]


def capacity_only(out: dict[str, Any], name: str, command: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = [
        f"**{name}**: run {when}, `{command}`; the gateway pinned to CPU 0, the paced mock and the client process "
        f"(uvloop) to CPU 1; load average {os.getloadavg()[0]:.1f}.",
        "",
    ]
    return "\n".join(head + _capacity(out)) + "\n"


def _capacity(out: dict[str, Any]) -> list[str]:
    cap = out.get("capacity")
    if not cap:
        return []
    d, g, n = cap["direct"], cap["gateway"], cap["n"]
    per = (cap["peak"]["rss_kb"] - cap["idle"]["rss_kb"]) / max(1, cap["peak"]["open_at_sample"])
    lines = [
        f"### Capacity: {n:,} concurrent paced streams (2 chunks/s each, opened at {cap['opens_per_s']}/s), one worker",
        "",
        "| path | completed | errors | peak open | TTFT p50 | TTFT p99 | inter-chunk p50 | inter-chunk p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in (("direct", d), ("gateway", g)):
        lines.append(
            f"| {name} | {s['completed']} | {s['errors']} | {s['peak_open']} | {s['ttft_p50']:.1f} ms | "
            f"{s['ttft_p99']:.1f} ms | {s['gap_p50']:.1f} ms | {s['gap_p99']:.1f} ms |"
        )
    lines += [
        "",
        f"- added TTFT: p50 **{g['ttft_p50'] - d['ttft_p50']:.1f} ms**, "
        f"p99 **{g['ttft_p99'] - d['ttft_p99']:.1f} ms**; "
        f"added inter-chunk p99 **{g['gap_p99'] - d['gap_p99']:.1f} ms**",
        f"- paired, stream by stream (each gateway stream minus the direct stream opened next to it, "
        f"{cap['paired']['pairs']} pairs): added TTFT p50 **{cap['paired']['ttft_p50']:.1f} ms**, "
        f"p99 **{cap['paired']['ttft_p99']:.1f} ms**; added inter-chunk p50 {cap['paired']['gap_p50']:.1f} ms, "
        f"p99 **{cap['paired']['gap_p99']:.1f} ms**",
        f"- gateway RSS: {cap['idle']['rss_kb'] / 1024:.1f} MB after warm-up, {cap['peak']['rss_kb'] / 1024:.1f} MB "
        f"with {int(cap['peak']['open_at_sample'])} streams open: **{per:.1f} KB per open stream**; "
        f"{cap['after']['rss_kb'] / 1024:.1f} MB after they ended",
        f"- direct and gateway streams opened alternately by one client, side by side; load average (1 min) "
        f"{cap['load']['start']:.1f} at the start, {cap['load']['end']:.1f} at the end; the gateway worker used "
        f"{cap['gateway_cpu']:.0%} of its core during its run and waited for a CPU (runnable, not running: other "
        f"processes') {cap['gateway_cpu_wait']:.1%} of it, the client {cap['peak'].get('client_cpu_wait', 0):.1%} "
        f"of its run; TTFT max: direct {d['ttft_max']:.1f} ms, "
        f"gateway {g['ttft_max']:.1f} ms",
        f"- gateway file descriptors: {cap['idle']['fds']} idle, {int(cap['peak']['fds'])} at the peak, "
        f"{cap['after']['fds']} two seconds after (idle upstream keep-alive connections stay pooled until "
        "their keep-alive timeout)",
        "",
    ]
    return lines


def _routing(out: dict[str, Any]) -> list[str]:
    if "routing" not in out:
        return []
    (routed, fixed), (translated, passthrough) = out["routing"], out["translation"]
    return [
        "### Routing and translation (default variant, CPU per request at concurrency 4, median of 5 interleaved runs)",
        "",
        f"- route `intelligent` over 3 targets vs one fixed model: {routed.us:.0f} µs vs {fixed.us:.0f} µs "
        f"(routing costs **{(routed.us / fixed.us - 1) * 100:.1f}%**)",
        f"- OpenAI client → Anthropic upstream (translated) vs → OpenAI upstream (pass-through): "
        f"{translated.us:.0f} µs vs {passthrough.us:.0f} µs "
        f"(translation adds **{translated.us - passthrough.us:.0f} µs** per request)",
        "",
    ]


def _micro(out: dict[str, Any]) -> list[str]:
    micro = out.get("micro", {})
    lines = ["### One routing decision over 50 targets (in-process)", "", "| algorithm | µs |", "|---|---|"]
    lines += [f"| {name} | {us:.2f} |" for name, us in micro.get("routing", {}).items()]
    lines += ["", "### Translation cost per request (in-process)", ""]
    lines += [f"- {name}: {us:.1f} µs" for name, us in micro.get("translation", {}).items()]
    return lines + _telemetry(micro.get("telemetry"))


def _telemetry(telemetry: dict[str, float] | None) -> list[str]:
    if not telemetry:
        return []
    lines = [
        "",
        "### Request telemetry (in-process CPU per plain request at concurrency 1, best of 5 interleaved)",
        "",
        "Target: the default set (metrics + access log, tracing off) adds ≤ 50 µs.",
        "",
        "| variant | µs per request | added |",
        "|---|---|---|",
    ]
    base = telemetry[TELEMETRY_BASELINE]
    for name, us in telemetry.items():
        added = "" if name == TELEMETRY_BASELINE else f"{us - base:+.1f} µs"
        lines.append(f"| {name} | {us:.1f} | {added} |")
    return lines
