"""`make bench-operator`: the control plane at N AIModels, on the real control-plane harness.

etcd + kube-apiserver + kube-controller-manager (tests/k8s_harness.py) and the operator as a
process (`python -m aimm_operator`, its ServiceAccount's RBAC; its requests counted from the API
server's audit log, tests/bench/audit_count.py). Per N:
N AIModels (keys in 10 Secrets), N/10 RoutingPolicies of 10 targets, N/100 CostBudgets, one
AIGateway. Measures apply → every AIModel Ready, one model edit → the ConfigMap serving it, the
operator's CPU and RSS (peak; idle), API requests per minute while idle, object sizes, and the
longest request stall of a gateway process (standing in for a pod: there is no kubelet) while it
reloads an edit under load (tests/bench/reload_stall.py).

    python -m tests.bench.operator_scale [--sizes 10,100,1000,5000] [--out docs/benchmarks.md]
        [--profile /tmp/operator.txt]   # py-spy (pip install py-spy) samples the operator meanwhile
        [--memtrace /tmp/memtrace]      # allocation sites before/after each size (operator/memtrace.py)
        [--pods 5 --idle 60]            # gateway processes reporting stats (tests/operator/pods.py) while idle
        [--operator-path DIR --crds DIR]  # another checkout's operator code and CRDs, for before/after
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimm_gateway.bench.procs import stop
from tests.bench.audit_count import AuditLog, apiserver_args
from tests.bench.reload_stall import reload_stall
from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api, ConditionWatch
from tests.operator.manifests import budget, gateway, model, policy, route
from tests.operator.pods import GatewayPod, compiled_config

REPO = Path(__file__).resolve().parents[2]
MARK_BEGIN = "<!-- bench-operator:begin -->"
MARK_END = "<!-- bench-operator:end -->"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    n: int
    apply_s: float
    all_ready_s: float
    edit_s: float
    cpu_busy_s: float
    server_cpu_s: float  # kube-apiserver + etcd CPU over the same span: what the writes cost there
    client_cpu_s: float  # this process over the same span: the client's apply and its watch
    rss_peak_mb: float
    rss_idle_mb: float
    idle_cpu_pct: float
    idle_requests_per_min: float
    configmap_bytes: int
    deployment_bytes: int
    list_aimodels_s: float
    converge_requests: dict[str, int]  # operator API requests from apply to all Ready, by kind
    kubectl_get_s: float = 0.0  # `kubectl get aimodels`, every row
    kubectl_rows: int = 0
    kubectl_cpu_s: float = 0.0  # kubectl's own CPU (user + system) in the median run: robust to a shared host
    kubectl_server_cpu_s: float = 0.0  # kube-apiserver + etcd CPU during that run: the server's share
    table_row_bytes: float = 0.0  # a Table row as kubectl receives it (its cells and its object's metadata)
    managed_row_bytes: float = 0.0  # the part of it that is metadata.managedFields (compact JSON)
    pods: int = 0  # gateway processes reporting stats while idle
    stall_ms: tuple[float, float, float] = (
        0.0,
        0.0,
        0.0,
    )  # a pod's longest request under load: with a reload, without; the reload


def request_kind(method: str, path: str, query: str) -> str:
    """What an operator request was, for the convergence breakdown."""
    if method == "PATCH" and path.endswith("/status"):
        return "status"
    if method == "POST" and "/events" in path:
        return "event"
    if method == "GET" and "watch=" not in query and path.rstrip("/").split("/")[-1] in PLURALS:
        return "list"
    return "other"


PLURALS = frozenset({"aigateways", "aimodels", "routingpolicies", "costbudgets", "endpointslices"})


def proc_stats(pid: int) -> tuple[float, float, float]:
    """(cpu seconds, rss MB, peak rss MB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return cpu, int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def start_operator(
    kubeconfig: Path, log: Path, path: str | None = None, memtrace: Path | None = None
) -> subprocess.Popen[bytes]:
    """The operator as a process; `path` (PYTHONPATH) runs another checkout's code, for before/after;
    `memtrace` turns on its allocation tracing (dumps on SIGUSR1, see operator/memtrace.py)."""
    args = [sys.executable, "-m", "aimm_operator", "-A", f"--kubeconfig={kubeconfig}", "--stats-interval=10"]
    env = {**os.environ, **({"PYTHONPATH": path} if path else {})}
    if memtrace is not None:
        env["AIMM_OPERATOR_MEMTRACE"] = str(memtrace)
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=REPO, env=env)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (pip install py-spy) sampling the operator: `--format raw` writes collapsed stacks,
    one line per distinct stack with its sample count (flamegraph.pl / speedscope read them)."""
    args = ["py-spy", "record", "--pid", str(pid), "--rate", "50", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    spy.wait(60)


def objects(ns: str, n: int) -> list[dict[str, Any]]:
    names = [f"m{i:05d}" for i in range(n)]
    out: list[dict[str, Any]] = [
        model(
            ns,
            name,
            provider="openai",
            upstream="gpt-4o-mini",
            labels={"team": f"t{i % 10}"},
            apiKeySecretRef={"name": f"keys-t{i % 10}", "key": name},
            pricing={"inputPer1k": 0.00015, "outputPer1k": 0.0006},
        )
        for i, name in enumerate(names)
    ]
    for p in range(max(1, n // 10)):
        targets = names[p * 10 : p * 10 + 10] or names[:1]
        out.append(policy(ns, f"rp{p:04d}", [route(f"route{p:04d}", *targets)]))
    for b in range(max(1, n // 100)):
        out.append(budget(ns, f"b{b:03d}", 100.0, scope={"modelSelector": {"matchLabels": {"team": f"t{b % 10}"}}}))
    return out


def settle(audit: AuditLog, quiet_s: float, timeout: float) -> None:
    """Until the operator made no write (status, Event) for `quiet_s`, at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        audit.clear()
        time.sleep(quiet_s)
        if not any(request_kind(s.method, s.path, s.query) in ("status", "event") for s in audit.seen):
            return


def served_weight(api: Api, ns: str, name: str) -> float | None:
    cm = api.get("ConfigMap", ns, "gw-config")
    if not cm:
        return None
    return next((m["weight"] for m in compiled_config(cm)["models"] if m["name"] == name), None)


def memtrace_dump(pid: int, out: Path | None) -> None:
    """Ask the operator for an allocation-site dump and wait until it is written."""
    if out is None:
        return
    # The operator makes the folder when it installs its SIGUSR1 handler: before that the signal kills it.
    wait(out.exists, 120, "the operator's memtrace hook")
    before = len(list(out.glob("memtrace-*.txt")))
    os.kill(pid, signal.SIGUSR1)
    wait(lambda: len(list(out.glob("memtrace-*.txt"))) > before, 300, "memtrace dump")
    time.sleep(1)


def wait(cond: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return time.monotonic() - start
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached in {timeout}s")


def cpu_of(pids: list[int]) -> float:
    return sum(proc_stats(pid)[0] for pid in pids)


@dataclass
class Bench:
    """What every size is measured with: the API as admin, the operator's requests (the audit log),
    the control plane's processes, and the options."""

    api: Api
    audit: AuditLog
    op_pid: int
    server_pids: list[int]
    kubectl: Path
    kubeconfig: Path
    workdir: Path
    pods: int = 0  # gateway processes standing in for pods (tests/operator/pods.py), reporting stats
    idle_s: float = 30.0
    memtrace: Path | None = None
    profile_idle: Path | None = None  # py-spy over the idle window only
    server_profile: Path | None = None  # the API server's CPU profile (pprof) from the first apply on
    server_profile_s: int = 20
    kubectl_profile: Path | None = None  # kubectl's own CPU profile of one `kubectl get aimodels`
    without_managed_fields: bool = False  # and `kubectl get` again with the rows' managedFields cleared


def run_size(bench: Bench, n: int) -> Result:
    ns = f"bench-{n}"
    bench.api.create_namespace(ns)
    for t in range(10):
        bench.api.create_secret(ns, f"keys-t{t}", {f"m{i:05d}": "sk-bench" for i in range(t, n, 10)})
    memtrace_dump(bench.op_pid, bench.memtrace)  # the baseline: what the burst adds is in the next dump
    with ConditionWatch(bench.api, "AIModel", ns) as watch:
        result = measure(bench, n, ns, watch)
    bench.api.request("DELETE", f"/api/v1/namespaces/{ns}")
    return result


def measure(bench: Bench, n: int, ns: str, watch: ConditionWatch) -> Result:
    api, audit, op_pid = bench.api, bench.audit, bench.op_pid
    cpu0, _, _ = proc_stats(op_pid)
    server0, client0 = cpu_of(bench.server_pids), time.process_time()
    audit.clear()
    profiling = server_profile(bench, n)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(api.apply, objects(ns, n)))
    api.apply(gateway(ns, "gw", autoscaling={"enabled": False}, replicas={"min": 1, "max": 1}))
    apply_s = time.monotonic() - started
    if bench.memtrace is not None:  # the burst at its height (the dump pauses the operator a second or two)
        wait(lambda: watch.count("Ready", "True") >= n // 2, 600, f"{n // 2} AIModels Ready")
        memtrace_dump(op_pid, bench.memtrace)
    wait(lambda: watch.count("Ready", "True") == n, 600, f"{n} AIModels Ready")
    all_ready_s = time.monotonic() - started
    cpu1, _, _ = proc_stats(op_pid)
    server1, client1 = cpu_of(bench.server_pids), time.process_time()
    converge: dict[str, int] = {}
    others: Counter[str] = Counter()
    for seen in audit.seen:
        kind = request_kind(seen.method, seen.path, seen.query)
        converge[kind] = converge.get(kind, 0) + 1
        if kind == "other":
            others[f"{seen.method} {seen.path}{' (watch)' if 'watch=' in seen.query else ''}"] += 1
    print(f"other requests while converging, most frequent: {others.most_common(6)}", file=sys.stderr, flush=True)

    api.merge_patch("AIModel", ns, "m00000", {"spec": {"weight": 7}})
    edit_s = wait(lambda: served_weight(api, ns, "m00000") == 7, 120, "edit in the ConfigMap")
    if profiling is not None:
        profiling.join()
    pods = start_pods(bench, ns, n, watch)
    try:
        idle = measure_idle(bench)
        # Sizes and `kubectl get` on the idle control plane, pods still reporting: once they stop,
        # the stats poll marks every model's Available condition stale (n status writes), and a
        # `kubectl get` then would measure those writes too.
        measured = sizes(bench, ns)
        # Last: its edit reaches one pod only (no kubelet refreshes the others), which the operator
        # then reports on every poll, so nothing idle is measured after it.
        stall = measure_stall(bench, ns, pods)
    finally:
        for pod in pods:
            pod.stop()
    return Result(
        n=n,
        apply_s=apply_s,
        all_ready_s=all_ready_s,
        edit_s=edit_s,
        cpu_busy_s=cpu1 - cpu0,
        server_cpu_s=server1 - server0,
        client_cpu_s=client1 - client0,
        converge_requests=converge,
        pods=len(pods),
        stall_ms=stall,
        **idle,
        **measured,
    )


def server_profile(bench: Bench, n: int) -> threading.Thread | None:
    """The API server's own CPU profile (its /debug/pprof, on by default) over the next
    `bench.server_profile_s` seconds, written to `bench.server_profile` with the size in its name
    (read it with `go tool pprof -top`)."""
    if bench.server_profile is None:
        return None
    out = bench.server_profile.with_name(f"{bench.server_profile.stem}-{n}{bench.server_profile.suffix}")
    url = f"/debug/pprof/profile?seconds={bench.server_profile_s}"

    def fetch() -> None:
        out.write_bytes(bench.api.client.get(url, timeout=bench.server_profile_s + 30).content)

    thread = threading.Thread(target=fetch, name="apiserver-pprof")
    thread.start()
    return thread


def start_pods(bench: Bench, ns: str, n: int, watch: ConditionWatch) -> list[GatewayPod]:
    """`bench.pods` gateway processes run from the rendered ConfigMap and Deployment, each with an
    EndpointSlice, as a kubelet would; returns once the stats poll reported every model Available."""
    pods = [GatewayPod(bench.api, ns, "gw", f"gw-pod-{i}", bench.workdir / ns / f"pod{i}") for i in range(bench.pods)]
    try:
        with ThreadPoolExecutor(max(1, len(pods))) as pool:
            list(pool.map(lambda pod: pod.start(ready_timeout=300), pods))  # 1,000s of models, a busy host
        if pods:
            wait(lambda: watch.count("Available", "True") == n, 300, f"{n} AIModels Available")
    except BaseException:
        for pod in pods:  # none may outlive the bench
            pod.stop()
        raise
    return pods


def measure_stall(bench: Bench, ns: str, pods: list[GatewayPod]) -> tuple[float, float, float]:
    """The longest request stall of a pod during the reload of one edit (`tests/bench/reload_stall.py`):
    on the first reporting pod, else on one started for it."""
    pod = pods[0] if pods else GatewayPod(bench.api, ns, "gw", "gw-stall", bench.workdir / ns / "stall")
    if not pods:
        pod.start(publish=False, ready_timeout=300)
    try:
        settle(bench.audit, quiet_s=3, timeout=300)  # the operator's own writes out of the way

        def edit() -> None:
            bench.api.merge_patch("AIModel", ns, "m00001", {"spec": {"weight": 9}})
            wait(lambda: served_weight(bench.api, ns, "m00001") == 9, 120, "the stall edit in the ConfigMap")
            settle(bench.audit, quiet_s=3, timeout=300)

        return reload_stall(bench.api, pod, edit)
    finally:
        if not pods:
            pod.stop()


def measure_idle(bench: Bench) -> dict[str, Any]:
    """The operator idle: first the one-time work settles (the queued "became Ready" Events, the
    first stats statuses), then CPU, RSS and API requests over `bench.idle_s`."""
    settle(bench.audit, quiet_s=5, timeout=300)
    bench.audit.clear()
    spy = start_profiler(bench.op_pid, bench.profile_idle) if bench.profile_idle else None
    cpu_a, _, _ = proc_stats(bench.op_pid)
    time.sleep(bench.idle_s)
    cpu_b, rss_idle, rss_peak = proc_stats(bench.op_pid)
    if spy is not None:
        stop_profiler(spy)
    seen = bench.audit.seen
    requests = len(seen)
    top = Counter(f"{r.method} {r.path.rsplit('/', 2)[-2] if r.path.endswith('/status') else r.path}" for r in seen)
    print(f"idle requests, most frequent: {top.most_common(6)}", file=sys.stderr, flush=True)
    memtrace_dump(bench.op_pid, bench.memtrace)  # what the burst left behind, idle, before the namespace goes
    return {
        "rss_peak_mb": rss_peak,
        "rss_idle_mb": rss_idle,
        "idle_cpu_pct": 100 * (cpu_b - cpu_a) / bench.idle_s,
        "idle_requests_per_min": requests * 60 / bench.idle_s,
    }


TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


@dataclass(frozen=True)
class TablePages:
    """What the API server sent for `kubectl get aimodels`, fetched without kubectl."""

    seconds: float
    bytes: int
    row_bytes: float  # per row of the first page, columnDefinitions included
    managed_row_bytes: float  # metadata.managedFields per row, compact JSON as on the wire


def server_table(api: Api, ns: str) -> TablePages:
    """What `kubectl get aimodels` asks of the API server (server-side printing, pages of 500),
    without kubectl: seconds and bytes, to tell the server's share from kubectl's own."""
    t, size, cont, first = time.monotonic(), 0, "", True
    row_bytes = managed = 0.0
    while True:
        params = {"limit": "500", **({"continue": cont} if cont else {})}
        r = api.client.get(
            f"/apis/aimm.io/v1alpha1/namespaces/{ns}/aimodels",
            params=params,
            headers={**api._headers(), "Accept": TABLE},
        )
        r.raise_for_status()
        size += len(r.content)
        page = r.json()
        if first:  # what a row is made of: its cells, and the object's metadata (managedFields included)
            rows = page.get("rows") or [{}]
            meta = [row.get("object", {}).get("metadata", {}) for row in rows]
            compact = (",", ":")
            managed = sum(len(json.dumps(m.get("managedFields"), separators=compact)) for m in meta) / len(rows)
            row_bytes = len(r.content) / len(rows)
            first = False
        cont = (page.get("metadata") or {}).get("continue") or ""
        if not cont:
            return TablePages(time.monotonic() - t, size, row_bytes, managed)


def run_kubectl(args: list[str], server_pids: list[int]) -> tuple[float, float, float, str]:
    """Seconds, kubectl's CPU seconds (user + system, from its rusage), the API server's and etcd's
    CPU seconds meanwhile, and stdout of one kubectl run."""
    before, server0 = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of(server_pids)
    t = time.monotonic()
    out = subprocess.run(args, capture_output=True, check=True, timeout=120, text=True)
    wall = time.monotonic() - t
    after, server1 = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_of(server_pids)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, server1 - server0, out.stdout


def kubectl_runs(runs: list[tuple[float, float, float, str]]) -> str:
    """Wall, kubectl CPU and API server CPU of each `kubectl get` run, for the log."""

    def each(i: int) -> str:
        return " / ".join(f"{r[i]:.2f}" for r in runs)

    return f"{each(0)} s (kubectl CPU {each(1)} s, API server + etcd CPU {each(2)} s)"


def without_managed_fields(bench: Bench, ns: str, args: list[str]) -> str:
    """What `kubectl get` takes when the rows carry no managedFields: clears them on every AIModel of
    the (throw-away) benchmark namespace, a reset the API server allows, then times kubectl again."""
    names = [o["metadata"]["name"] for o in bench.api.list("AIModel", ns)]
    reset = {"metadata": {"managedFields": [{}]}}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda name: bench.api.merge_patch("AIModel", ns, name, reset), names))
    runs = sorted(run_kubectl(args, bench.server_pids) for _ in range(3))
    table = server_table(bench.api, ns)
    return f"{kubectl_runs(runs)}, a row {table.row_bytes:.0f} bytes"


def sizes(bench: Bench, ns: str) -> dict[str, Any]:
    """Object sizes, a list of 500 AIModels, and the real `kubectl get aimodels` (every row, kubectl's
    default chunks of 500, its table printing included)."""
    t = time.monotonic()
    bench.api.request("GET", f"/apis/aimm.io/v1alpha1/namespaces/{ns}/aimodels", params={"limit": "500"})
    list_s = time.monotonic() - t
    args = [str(bench.kubectl), f"--kubeconfig={bench.kubeconfig}", "get", "aimodels", "-n", ns]
    # The median of three: one run is at the mercy of the host. The first also fills kubectl's
    # discovery cache, as any user's has been filled before.
    runs = sorted(run_kubectl(args, bench.server_pids) for _ in range(3))
    kubectl_s, kubectl_cpu, server_cpu, stdout = runs[1]
    table = server_table(bench.api, ns)
    print(
        f"kubectl get aimodels: {kubectl_runs(runs)}; "
        f"the server's Table pages alone (as kubectl asks, 500 a page): {table.seconds:.2f} s, {table.bytes / 1e6:.2f} MB; "
        f"a row {table.row_bytes:.0f} bytes, its managedFields {table.managed_row_bytes:.0f}; load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
        flush=True,
    )
    if bench.kubectl_profile is not None:  # one more run, under kubectl's own CPU profiler
        out = bench.kubectl_profile.with_name(f"{bench.kubectl_profile.stem}-{ns}{bench.kubectl_profile.suffix}")
        run_kubectl([*args, "--profile=cpu", f"--profile-output={out}"], bench.server_pids)
    if bench.without_managed_fields:
        print(f"kubectl get aimodels without managedFields: {without_managed_fields(bench, ns, args)}", file=sys.stderr)
    cm = bench.api.get("ConfigMap", ns, "gw-config") or {}
    dep = bench.api.get("Deployment", ns, "gw") or {}
    return {
        "configmap_bytes": len(json.dumps(cm)),
        "deployment_bytes": len(json.dumps(dep)),
        "list_aimodels_s": list_s,
        "kubectl_get_s": kubectl_s,
        "kubectl_rows": len(stdout.splitlines()) - 1,
        "kubectl_cpu_s": kubectl_cpu,
        "kubectl_server_cpu_s": server_cpu,
        "table_row_bytes": table.row_bytes,
        "managed_row_bytes": table.managed_row_bytes,
    }


def report(results: list[Result | str]) -> str:
    head = (
        "| N | apply (client) | apply → all Ready | last client write → all Ready | one edit → ConfigMap | "
        "CPU while converging: operator / API server + etcd / bench (apply, watch) | "
        "RSS peak / idle | idle CPU (gateway pods reporting) | idle API req/min | ConfigMap | Deployment | "
        "list AIModels (500) | `kubectl get aimodels` (rows): wall / CPU of kubectl / of API server + etcd | "
        "Table row / its managedFields | a pod's longest request under load: with a reload / without (the reload) | "
        "requests while converging (status / event / list / other) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"{r}\n"
        if isinstance(r, str)
        else f"| {r.n:,} | {r.apply_s:.1f} s | {r.all_ready_s:.1f} s | {r.all_ready_s - r.apply_s:.1f} s | {r.edit_s:.2f} s | {r.cpu_busy_s:.1f} / {r.server_cpu_s:.1f} / {r.client_cpu_s:.1f} s | "
        f"{r.rss_peak_mb:.0f} / {r.rss_idle_mb:.0f} MB | {r.idle_cpu_pct:.2f} % ({r.pods}) | {r.idle_requests_per_min:.0f} | "
        f"{r.configmap_bytes / 1024:.0f} KB | {r.deployment_bytes / 1024:.1f} KB | {r.list_aimodels_s * 1000:.0f} ms | "
        f"{r.kubectl_get_s:.2f} / {r.kubectl_cpu_s:.2f} / {r.kubectl_server_cpu_s:.2f} s ({r.kubectl_rows:,}) | {r.table_row_bytes:,.0f} / {r.managed_row_bytes:,.0f} B | "
        f"{r.stall_ms[0]:.1f} / {r.stall_ms[1]:.1f} ms ({r.stall_ms[2] / 1000:.2f} s) | {breakdown(r.converge_requests)} |\n"
        for r in results
    )
    return (
        f"{MARK_BEGIN}\n## Operator at scale (`make bench-operator`)\n\n"
        "Real etcd + kube-apiserver + kube-controller-manager and the operator process on this machine "
        "(shared, 2 cores), N AIModels with N/10 RoutingPolicies and N/100 CostBudgets, one AIGateway. "
        "Sizes run one after another in one operator process (RSS peak is the process's high-water mark "
        "so far). No kubelet: gateway processes stand in for pods (tests/operator/pods.py); the reload stall is "
        "wrk's longest request to one of them, in a 10 s run with the reload of one AIModel edit and in one without "
        "(tests/bench/reload_stall.py).\n\n"
        f"{head}{rows}{MARK_END}\n"
    )


def breakdown(counts: dict[str, int]) -> str:
    parts = " / ".join(f"{counts.get(k, 0):,}" for k in ("status", "event", "list", "other"))
    return f"{sum(counts.values()):,} ({parts})"


def write_report(text: str, out: Path) -> None:
    old = out.read_text() if out.exists() else ""
    if MARK_BEGIN in old and MARK_END in old:
        before, rest = old.split(MARK_BEGIN, 1)
        after = rest.split(MARK_END, 1)[1].lstrip("\n")
        new = f"{before}{text}{after}"
    else:
        new = f"{old.rstrip()}\n\n{text}" if old else text
    out.write_text(new)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench-operator")
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--out", type=Path, default=None, help="write the table into this markdown file")
    parser.add_argument(
        "--operator-path",
        default=None,
        help="PYTHONPATH holding another aimm_operator/aimm_gateway (e.g. the previous commit's) to measure it",
    )
    parser.add_argument(
        "--memtrace",
        type=Path,
        default=None,
        help="trace the operator's allocations; a dump per size before and after into this folder",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="sample the operator with py-spy into this file (collapsed stacks)"
    )
    parser.add_argument(
        "--pods", type=int, default=0, help="gateway processes standing in for pods, reporting stats while idle"
    )
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of the idle window")
    parser.add_argument("--profile-idle", type=Path, default=None, help="py-spy over the idle window only")
    parser.add_argument(
        "--server-profile",
        type=Path,
        default=None,
        help="the API server's CPU profile (pprof) from the first apply on, one file per size",
    )
    parser.add_argument("--server-profile-seconds", type=int, default=20)
    parser.add_argument(
        "--kubectl-profile", type=Path, default=None, help="kubectl's CPU profile (pprof) of one `kubectl get`"
    )
    parser.add_argument(
        "--without-managed-fields",
        action="store_true",
        help="after the measurement, clear the AIModels' managedFields and time `kubectl get` again",
    )
    parser.add_argument(
        "--crds", type=Path, default=REPO / "crds", help="the CRDs to install (another checkout's, for before/after)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    audit_dir = Path(tempfile.mkdtemp(prefix="bench-operator-audit-"))
    profiling = ["--profiling=true"] if args.server_profile else []  # the harness turns it off
    cp = ControlPlane(crds=[args.crds], extra_apiserver_args=apiserver_args(audit_dir) + profiling).start()
    op: subprocess.Popen[bytes] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        cp.apply_dir(REPO / "deploy" / "operator")
        token = cp.kubectl("create", "token", "aimm-operator", "-n", "aimm-system", "--duration=2h", check=True)
        kubeconfig = cp.tmp_dir / "bench-operator.kubeconfig"  # type: ignore[operator]
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "p", "cluster": {"server": cp.server, "certificate-authority": str(cp.ca_file)}}
                    ],
                    "users": [{"name": "op", "user": {"token": token.stdout.strip()}}],
                    "contexts": [{"name": "op", "context": {"cluster": "p", "user": "op"}}],
                    "current-context": "op",
                }
            )
        )
        server_pids = cp.pids("kube-apiserver", "etcd")
        op = start_operator(kubeconfig, cp.tmp_dir / "bench-operator.log", args.operator_path, args.memtrace)  # type: ignore[operator]
        api = Api(cp.kubeconfig_path)  # type: ignore[arg-type]
        if args.profile:
            spy = start_profiler(op.pid, args.profile)
        time.sleep(3)
        bench = Bench(
            api=api,
            audit=AuditLog(audit_dir / "audit.log"),
            op_pid=op.pid,
            server_pids=server_pids,
            kubectl=cp.bin_dir / "kubectl",
            kubeconfig=cp.kubeconfig_path,  # type: ignore[arg-type]
            workdir=cp.tmp_dir / "pods",  # type: ignore[operator]
            pods=args.pods,
            idle_s=args.idle,
            memtrace=args.memtrace,
            profile_idle=args.profile_idle,
            server_profile=args.server_profile,
            server_profile_s=args.server_profile_seconds,
            kubectl_profile=args.kubectl_profile,
            without_managed_fields=args.without_managed_fields,
        )
        results: list[Result | str] = []
        for n in sizes:
            try:
                results.append(run_size(bench, n))
            except TimeoutError as exc:  # a miss is a result too: recorded, and the larger sizes skipped
                results.append(f"| {n:,} | did not finish: {exc} (operator RSS {proc_stats(op.pid)[1]:.0f} MB) |")
            text = report(results)
            print(text.splitlines()[-2], flush=True)
            if args.out:
                write_report(text, args.out)  # after every size, so a later miss keeps what was measured
            if isinstance(results[-1], str):
                break
    finally:
        if spy is not None:
            stop_profiler(spy)
        if op is not None:
            stop(op, 15)
        cp.stop()
        shutil.rmtree(audit_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
