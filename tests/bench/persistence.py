"""``make bench`` section "persistence": the TinyDB layout at 10k and 100k groups (issue 14's table).

Each size runs in a fresh child process (``--persistence-child N FOLDER``), which builds the store
through the public Store API (N groups, N/2 audit records) and measures: the pre-action safety
write, a poll that changes 200 groups, a page of 100 errors idle and while a poll writes, and
its RSS. Then the parent starts ``kube-sentinel demo --store`` (``run`` for PostgreSQL) on those
files and measures restart to /ready, an acknowledge through the API (PATCH over HTTP from this
process, end to end), the running process's RSS, and SIGTERM to exit. Issue 14's figures for the old single-file layout are printed
beside them.
"""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-token-0123456789abcdef0123456789"

# Issue 14, measured on the single-file layout (one JSON document rewritten per flush).
BEFORE: dict[int, dict[str, str]] = {
    10_000: {"flush": "0.8 s", "ack": "0.9 s", "rss": "104 MiB (store) ", "restart": "2 s"},
    100_000: {
        "flush": "6.3-12 s",
        "ack": "16 s (median)",
        "page": "2.2 s behind a poll",
        "sigterm": "16 s",
        "restart": "26 s",
        "rss": "1,354 MiB (running)",
    },
}
SIZES = (10_000, 100_000)


def _status_mib(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mib(pid: int | str = "self") -> float:
    return _status_mib("VmRSS", pid)


def peak_rss_mib() -> float:
    """This process's peak RSS since it started: ``VmHWM``. Not ``ru_maxrss``, which Linux carries
    over an ``exec`` from the process that forked it (a child of a big bench runner starts "big")."""
    if Path("/proc/self/status").exists():
        return _status_mib("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median_ms": statistics.median(values) * 1000,
        "p90_ms": values[min(len(values) - 1, int(len(values) * 0.9))] * 1000,
        "max_ms": values[-1] * 1000,
    }


def persistence_child(n: int, folder: str, url: str = "") -> dict[str, Any]:
    """Build and measure one store: TinyDB in ``folder``, or PostgreSQL at ``url`` when given."""

    from sentinel.core.impact import LifecycleSettings
    from sentinel.core.model import RemediationRecord, Result
    from sentinel.store.base import GroupQuery, Store
    from sentinel.store.postgres import PostgresStore
    from sentinel.store.tinydb import TinyDBStore
    from tests.bench.run import store_deltas

    now = time.time()
    life = LifecycleSettings()
    path = Path(folder) / "sentinel.json"
    out: dict[str, Any] = {"groups": n, "records": n // 2}
    store: Store = PostgresStore(url) if url else TinyDBStore(path)
    deltas = store_deltas(n, now=now)
    t0 = time.perf_counter()
    for i in range(0, n, 10_000):
        store.record(deltas[i : i + 10_000], now=now, lifecycle=life)
    out["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n // 2):
        store.add_remediation(
            RemediationRecord(
                id=f"r{i:07d}",
                time=now - (n // 2 - i) * 5.0,
                group_id=deltas[i % n].key,
                rule=deltas[i % n].rule,
                action="restart-pod",
                namespace=deltas[i % n].namespace,
                kind="Pod",
                name=f"{deltas[i % n].workload}-0",
                decision="allowed" if i % 3 else "denied",
                reason="cooldown" if i % 3 == 0 else "executed",
                dry_run=True,
                result=Result.SUCCESS,
                workload=deltas[i % n].workload,
            )
        )
    store.put_state("safety", {"actions": [now - k for k in range(50)], "cooldowns": {}})
    store.put_state("settings", {"dry_run": True})
    store.set_cursor(int(now * 1e9))
    t0 = time.perf_counter()
    store.flush()
    out["first_full_write_s"] = time.perf_counter() - t0
    del deltas
    import gc

    gc.collect()
    out["rss_built_mib"] = _rss_mib()
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        out["files"] = "db"
        out["bytes_mib"] = (row[0] if row else 0) / 2**20
    else:
        out["files"] = sum(1 for p in path.parent.rglob("*") if p.is_file())
        out["bytes_mib"] = sum(p.stat().st_size for p in path.parent.rglob("*") if p.is_file()) / 2**20

    # pre-action safety write: the safety state and an "in progress" record, flushed
    safety: list[float] = []
    for k in range(30):
        store.put_state("safety", {"actions": [now - j for j in range(50 + k)], "cooldowns": {}})
        store.add_remediation(
            RemediationRecord(
                id=f"pre{k}",
                time=now,
                group_id="g000001",
                rule="r",
                action="restart-pod",
                namespace="team-01",
                kind="Pod",
                name="p",
                reason="in progress",
            )
        )
        t0 = time.perf_counter()
        store.flush()
        safety.append(time.perf_counter() - t0)
    out["safety_write"] = _ms(safety)

    # a poll that changes 200 groups: record + cursor + flush (the flush is the writing)
    ids = [g.id for g in store.list_groups(GroupQuery(page_size=500, sort="last_seen")).items]
    from sentinel.core.model import GroupDelta, Priority

    def poll_deltas(k: int) -> list[GroupDelta]:
        picked = [store.get_group(ids[(k * 7 + j) % len(ids)]) for j in range(200)]
        return [
            GroupDelta(
                key=g.id,
                namespace=g.namespace,
                workload=g.workload,
                container=g.container,
                template=g.template,
                rule=g.rule,
                priority=Priority(g.base_priority),
                count=1,
                first_seen=now,
                last_seen=now,
                pods={g.pods[0]: None} if g.pods else {},
                samples=[g.template],
                minute_counts={int(now // 60): 1},
                template_key=g.template_key,
            )
            for g in picked
            if g is not None
        ]

    writes: list[float] = []
    polls: list[float] = []
    for k in range(15):
        d = poll_deltas(k)
        t0 = time.perf_counter()
        store.record(d, now=now, lifecycle=life)
        store.set_cursor(int(now * 1e9) + k)
        t1 = time.perf_counter()
        store.flush()
        writes.append(time.perf_counter() - t1)
        polls.append(time.perf_counter() - t0)
    out["poll200_write"] = _ms(writes)
    out["poll200_total"] = _ms(polls)

    # a page of 100 errors: idle, then while a poll writes
    def pages(runs: int) -> list[float]:
        lat = []
        for r in range(runs):
            t0 = time.perf_counter()
            store.list_groups(GroupQuery(page=1 + r % 5, page_size=100))
            lat.append(time.perf_counter() - t0)
        return lat

    out["page_idle"] = _ms(pages(40))
    stop = threading.Event()

    def writer() -> None:
        k = 100
        while not stop.is_set():
            store.record(poll_deltas(k), now=now, lifecycle=life)
            store.flush()
            k += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.05)
        out["page_during_poll"] = _ms(pages(40))
    finally:
        stop.set()
        t.join()

    out["rss_end_mib"] = _rss_mib()
    out["peak_rss_mib"] = peak_rss_mib()
    store.close()
    return out


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PG_RUN_CONFIG = """\
loki:
  url: http://127.0.0.1:9
kubernetes:
  in_cluster: false
  kubeconfig: /nonexistent/kube-sentinel-bench-has-no-cluster
remediation:
  dry_run: true
rules_file: {rules}
store:
  type: postgresql
"""


def acknowledge(base: str, runs: int = 30) -> list[float]:
    """PATCH /api/errors/{id} over HTTP from this process to the server's, as a user's client does.

    (A uvicorn server on a thread of the measuring process adds about 40 ms to every request, /health
    included: that measured the harness, not the acknowledge.)"""
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}", "X-Sentinel-User": "bench"}
    acks: list[float] = []
    with httpx.Client(base_url=base, timeout=60) as c:
        page = c.get("/api/errors", params={"page_size": runs, "sort": "last_seen"})
        page.raise_for_status()
        for row in page.json()["items"]:
            t0 = time.perf_counter()
            r = c.patch(f"/api/errors/{row['id']}", json={"action": "acknowledge"}, headers=headers)
            acks.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(f"PATCH {row['id']}: {r.status_code} {r.text[:200]}")
    return acks


def restart_and_sigterm(folder: Path, url: str = "") -> dict[str, Any]:
    """``kube-sentinel demo --store`` over the built files (or ``run`` on the PostgreSQL store at ``url``):
    start to /ready, to a fully loaded store, its RSS then, SIGTERM to exit."""
    import os

    import httpx

    port = _free_port()
    exe = Path(sys.executable).with_name("kube-sentinel")
    errlog = open(folder / "demo.log", "w+b")  # noqa: SIM115 - a file, not a pipe: a full pipe would block its logging
    env = dict(os.environ)
    if url:
        from tests.bench.run import RULES

        config = folder / "pg-config.yaml"
        config.write_text(PG_RUN_CONFIG.format(rules=RULES), encoding="utf-8")
        args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
        env["KUBE_SENTINEL_STORE_URL"] = url
    else:
        args = ["demo", "--store", str(folder / "sentinel.json"), "--listen", f"127.0.0.1:{port}"]
    env["KUBE_SENTINEL_API_TOKEN"] = TOKEN  # the API takes changes only with a token
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errlog, env=env)
    out: dict[str, Any] = {}
    try:
        ready = None
        while time.perf_counter() - t0 < 120:
            if proc.poll() is not None:
                errlog.seek(0)
                raise RuntimeError(f"demo exited {proc.returncode}: {errlog.read()[-500:]!r}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    ready = time.perf_counter() - t0
                    break
            time.sleep(0.05)
        out["restart_to_ready_s"] = ready
        loaded = None
        while ready is not None and time.perf_counter() - t0 < 300:  # until the store says it has everything
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                r = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
                if r.json()["checks"].get("store_load", "ok") == "ok":
                    loaded = time.perf_counter() - t0
                    break
            time.sleep(0.1)
        out["restart_to_loaded_s"] = loaded
        if loaded is not None:
            out["ack_api"] = _ms(acknowledge(f"http://127.0.0.1:{port}"))
        time.sleep(3)
        out["running_rss_mib"] = _rss_mib(proc.pid)
        t1 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        out["sigterm_to_exit_s"] = time.perf_counter() - t1
        out["exit_code"] = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        errlog.close()
    return out


def section_persistence() -> dict[str, Any]:
    from tests.store.pgserver import PgCluster, find_bindir

    rows: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    bindir = find_bindir()
    cluster = PgCluster(bindir, durable=True).start() if bindir is not None else None
    kinds = ["tinydb"] + (["postgresql"] if cluster is not None else [])
    try:
        for kind in kinds:
            for n in SIZES:
                url = cluster.url(cluster.new_database()) if kind == "postgresql" and cluster is not None else ""
                row = _measure(n, url)
                rows[str(n) if kind == "tinydb" else f"pg{n}"] = row
                targets += _targets(n, row, kind)
    finally:
        if cluster is not None:
            cluster.stop()
    return {"rows": rows, "targets": targets}


def _measure(n: int, url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-store-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.bench.run", "--persistence-child", str(n), tmp, *([url] if url else [])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"persistence child {n} failed: {proc.stderr[-2000:]}")
        row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(restart_and_sigterm(Path(tmp), url))
    return row


def _targets(n: int, row: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    from tests.bench.run import target

    targets: list[dict[str, Any]] = []
    if n != 100_000:
        return targets
    targets += [
        target("pre-action safety write (100k)", row["safety_write"]["median_ms"], 20, higher=False, unit="ms"),
        target("acknowledge, API PATCH end to end (100k)", row["ack_api"]["median_ms"], 50, higher=False, unit="ms"),
        target("page of 100 errors (100k)", row["page_idle"]["p90_ms"], 200, higher=False, unit="ms"),
        target(
            "page of 100 errors while a poll writes (100k)",
            row["page_during_poll"]["p90_ms"],
            200,
            higher=False,
            unit="ms",
        ),
        target(
            "poll changing 200 groups: writing (100k)",
            row["poll200_write"]["median_ms"],
            200,
            higher=False,
            unit="ms",
        ),
        target("restart to /ready (100k)", row.get("restart_to_ready_s"), 5, higher=False, unit="s"),
        target("SIGTERM to exit (100k)", row.get("sigterm_to_exit_s"), 5, higher=False, unit="s"),
        target("running RSS, 100k groups + 50k records", row.get("running_rss_mib"), 400, higher=False, unit="MiB"),
    ]
    if kind != "tinydb":
        for t in targets:
            t["target"] = f"{kind}: {t['target']}"
    return targets


def render(sec: dict[str, Any]) -> list[str]:
    if "rows" not in sec:
        return []
    L = ["## Persistence: the TinyDB layout and PostgreSQL (issue 14), beside the single-file layout", ""]

    def label(n: str) -> str:
        return f"TinyDB {int(n) // 1000}k" if n.isdigit() else f"PostgreSQL {int(n[2:]) // 1000}k"

    head = ["figure", *[label(n) for n in sec["rows"]], *[f"{n // 1000}k before" for n in SIZES]]
    r = sec["rows"]

    def cell(n: str, key: str, sub: str | None = None, unit: str = "ms") -> str:
        v = r[n].get(key)
        if sub is not None and isinstance(v, dict):
            v = v.get(sub)
        return "—" if v is None else f"{v:.1f} {unit}" if unit != "s" else f"{v:.2f} s"

    def before(key: str) -> list[str]:
        return [BEFORE[n].get(key, "—") for n in SIZES]

    lines = [
        ["pre-action safety write (median)", *[cell(n, "safety_write", "median_ms") for n in r], *before("flush")],
        ["acknowledge, API PATCH (median)", *[cell(n, "ack_api", "median_ms") for n in r], *before("ack")],
        ["acknowledge, API PATCH (p90)", *[cell(n, "ack_api", "p90_ms") for n in r], "—", "—"],
        ["page of 100 errors (p90)", *[cell(n, "page_idle", "p90_ms") for n in r], "—", "—"],
        ["page of 100 while a poll writes (p90)", *[cell(n, "page_during_poll", "p90_ms") for n in r], *before("page")],
        [
            "poll changing 200 groups: writing (median)",
            *[cell(n, "poll200_write", "median_ms") for n in r],
            *before("flush"),
        ],
        [
            "poll changing 200 groups: record + write (median)",
            *[cell(n, "poll200_total", "median_ms") for n in r],
            "—",
            "—",
        ],
        ["first full write", *[cell(n, "first_full_write_s", unit="s") for n in r], "—", "—"],
        [
            "restart to /ready (`kube-sentinel demo --store`)",
            *[cell(n, "restart_to_ready_s", unit="s") for n in r],
            *before("restart"),
        ],
        [
            "restart to a fully loaded store (/ready `store_load: ok`)",
            *[cell(n, "restart_to_loaded_s", unit="s") for n in r],
            "—",
            "—",
        ],
        ["SIGTERM to exit", *[cell(n, "sigterm_to_exit_s", unit="s") for n in r], "—", BEFORE[100_000]["sigterm"]],
        ["RSS of the running process", *[cell(n, "running_rss_mib", unit="MiB") for n in r], *before("rss")],
        [
            "RSS of the store builder (built / end / peak)",
            *[f"{r[n]['rss_built_mib']:.0f} / {r[n]['rss_end_mib']:.0f} / {r[n]['peak_rss_mib']:.0f} MiB" for n in r],
            "—",
            "—",
        ],
        ["files on disk / size", *[f"{r[n]['files']} / {r[n]['bytes_mib']:.0f} MiB" for n in r], "1", "130-198 MiB"],
    ]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    L += ["| " + " | ".join(str(c) for c in row) + " |" for row in lines]
    L += [
        "",
        "Groups from `store_deltas` (1-30 minute buckets, 1-3 pods, 3 samples each), N/2 audit records. "
        "The safety write is `put_state` + `add_remediation` + `flush` (commit file + one audit append); "
        "the poll's writing is the `flush` after `record` of 200 existing groups (their shards + the commit). "
        "Restart, RSS and SIGTERM are those of `kube-sentinel demo --store` on the same files (the demo's own "
        "logs are polled on top); for PostgreSQL, `kube-sentinel run` on the same database (a throwaway "
        "server from Debian's binaries, fsync on, over a Unix socket; its own memory is not in the RSS). "
        "'Before' is issue 14's table for the single-file layout.",
        "",
    ]
    return L
