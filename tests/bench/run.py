"""``make bench``: every speed, memory and grouping figure, each beside its peer, in one report.

    python -m tests.bench.run --out bench-report            # writes bench-report.md and .json
    python -m tests.bench.run --out /tmp/b --only pipeline  # one section (names below)

Sections (each runs on its own: one that fails reports its error and the others still run):
grouping, k8s_corpus, classification, parsing, pipeline, store, persistence, api, console, decisions. Absolute
times depend on the machine, so the report starts with its core count and load; ratios to a peer measured in the same
run are the figures to compare across machines. See ``tests/bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOGHUB = HERE / "loghub"
RULES = ROOT / "tests" / "fixtures" / "upstream" / "upstream-rules.yaml"
DEMO = ROOT / "sentinel" / "demo"

SECTIONS = (
    "grouping",
    "k8s_corpus",
    "classification",
    "parsing",
    "pipeline",
    "store",
    "persistence",
    "api",
    "console",
    "decisions",
)


# --- helpers ----------------------------------------------------------------------------------------


def _load_file_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def target(name: str, value: float | None, goal: float, *, higher: bool, unit: str) -> dict[str, Any]:
    """A target line: PASS/MISS and by how much (relative to the goal)."""
    if value is None:
        return {"target": name, "goal": goal, "value": None, "unit": unit, "verdict": "NOT MEASURED", "margin": ""}
    ok = value >= goal if higher else value <= goal
    ratio = value / goal if goal else float("inf")
    if higher:
        margin = f"{ratio:.2f}x the goal ({(ratio - 1) * 100:+.0f}%)"
    else:
        margin = (
            f"{ratio:.2f}x the limit ({(1 - ratio) * 100:.0f}% {'headroom' if ok else 'over'})"
            if ok
            else f"{ratio:.2f}x the limit ({(ratio - 1) * 100:.0f}% over)"
        )
    return {
        "target": name,
        "goal": goal,
        "value": value,
        "unit": unit,
        "verdict": "PASS" if ok else "MISS",
        "margin": margin,
    }


def child(args: list[str], *, timeout: float = 900) -> dict[str, Any]:
    """Run ``python -m tests.bench.run <args>`` in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pin_one_core() -> int | None:
    """Pin this process to one CPU (the last one: CPU 0 takes most interrupts)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


# --- 1. grouping ------------------------------------------------------------------------------------


def section_grouping(repeat: int = 5) -> dict[str, Any]:
    ga = _load_file_module("bench_ga", LOGHUB / "ga.py")
    drain = _load_file_module("bench_baseline_drain3", LOGHUB / "baseline_drain3.py")
    from tests.bench.loghub_group import group as ours

    names = list(ga.DATASETS)
    if not names:
        raise RuntimeError(f"no Loghub datasets under {ga.DATA} (set LOGHUB_DATA to a folder of <Name>/ datasets)")
    # Interleaved, a pass of each in turn, so that a burst of load from elsewhere or a change of
    # the machine's speed hits both alike (one after the other, their ratio was seen from 1.0x to
    # 2.1x on this 2-core VM); the best pass of each is kept. The first round runs two passes of
    # each (``evaluate`` then checks that the grouping is deterministic): repeat + 1 passes each.
    res_ours = ga.evaluate(ours, names, "corrected", 2)
    res_drain = ga.evaluate(drain.group, names, "corrected", 2)
    for _ in range(max(0, repeat - 1)):
        for res, fn in ((res_ours, ours), (res_drain, drain.group)):
            again = ga.evaluate(fn, names, "corrected", 1)
            for key in ("best_total_seconds", "best_total_cpu_seconds"):
                res[key] = min(res[key], again[key])
            res["lines_per_second"] = res["lines"] / res["best_total_seconds"]
            res["lines_per_cpu_second"] = res["lines"] / res["best_total_cpu_seconds"]
    rows = []
    for n in names:
        a, b = res_ours["per_dataset"][n], res_drain["per_dataset"][n]
        rows.append(
            {
                "system": n,
                "ga_ours": a["ga"],
                "ga_drain3": b["ga"],
                "groups_ours": a["pred_groups"],
                "groups_drain3": b["pred_groups"],
                "groups_true": a["true_groups"],
            }
        )
    lps_ratio = res_ours["lines_per_second"] / res_drain["lines_per_second"]
    cpu_ratio = res_ours["lines_per_cpu_second"] / res_drain["lines_per_cpu_second"]
    return {
        "rows": rows,
        "mean_ga_ours": res_ours["average_ga"],
        "mean_ga_drain3": res_drain["average_ga"],
        "lines": res_ours["lines"],
        "lines_per_s_ours": res_ours["lines_per_second"],
        "lines_per_s_drain3": res_drain["lines_per_second"],
        "lines_per_cpu_s_ours": res_ours["lines_per_cpu_second"],
        "lines_per_cpu_s_drain3": res_drain["lines_per_cpu_second"],
        "speed_ratio_wall": lps_ratio,
        "speed_ratio_cpu": cpu_ratio,
        "repeat": repeat,
        "nondeterministic": res_ours["nondeterministic"],
        "targets": [
            target(
                "grouping: mean GA on Loghub DEV (one configuration)",
                res_ours["average_ga"],
                0.92,
                higher=True,
                unit="GA",
            ),
            target("fingerprinting throughput vs Drain3 default (CPU time)", cpu_ratio, 1.5, higher=True, unit="x"),
        ],
    }


# --- 1b. the labelled Kubernetes corpus (issue 12) -------------------------------------------------


def section_k8s_corpus() -> dict[str, Any]:
    """GA, priority agreement and Go-rule agreement of ``analyze`` on both parts of the corpus."""
    from tests.bench.k8s_corpus.score import score_part

    parts = {name: score_part(name) for name in ("tune", "heldout")}
    h = parts["heldout"]
    return {
        "parts": parts,
        "targets": [
            target("k8s corpus HELD-OUT: GA (shipped config)", h["ga"], 0.95, higher=True, unit="GA"),
            target(
                "k8s corpus HELD-OUT: priority agreement with the SRE labels",
                h["priority_agreement"],
                0.90,
                higher=True,
                unit="share",
            ),
            target(
                "k8s corpus HELD-OUT: rule agreement with the Go tool (upstream rules)",
                h["rule_agreement"],
                0.99,
                higher=True,
                unit="share",
            ),
        ],
    }


def _k8s_corpus_markdown(sec: dict[str, Any]) -> list[str]:
    L = ["## 1b. Grouping and ranking on the labelled Kubernetes corpus (issue 12)", ""]
    if "parts" not in sec:
        return L + _error(sec)
    parts = sec["parts"]
    L += _table(
        [
            "part",
            "templates",
            "families",
            "lines",
            "true groups",
            "our groups",
            "GA",
            "priority = SRE",
            "rule = Go tool",
            "true groups exact",
            "priority, per group",
            "Go rule, per group",
        ],
        [
            [
                f"{name.upper()}{' (never tuned on)' if name == 'heldout' else ''}",
                r["templates"],
                r["families"],
                r["lines"],
                r["true_groups"],
                r["pred_groups"],
                f"{r['ga']:.3f}",
                f"{r['priority_agreement'] * 100:.1f}%",
                f"{r['rule_agreement'] * 100:.1f}%",
                f"{r['groups_exact'] * 100:.1f}%",
                f"{r['priority_agreement_per_group'] * 100:.1f}%",
                f"{r['rule_agreement_per_group'] * 100:.1f}%",
            ]
            for name, r in parts.items()
        ],
    )
    fams = sorted({f for r in parts.values() for f in r["per_family"]})
    L += _table(
        ["family", *[f"{n} lines" for n in parts], *[f"{n} priority" for n in parts], *[f"{n} Go rule" for n in parts]],
        [
            [
                f,
                *[r["per_family"].get(f, {}).get("lines", 0) for r in parts.values()],
                *[
                    f"{r['per_family'][f]['priority_agreement'] * 100:.0f}%" if f in r["per_family"] else "—"
                    for r in parts.values()
                ],
                *[
                    f"{r['per_family'][f]['rule_agreement'] * 100:.0f}%" if f in r["per_family"] else "—"
                    for r in parts.values()
                ],
            ]
            for f in fams
        ],
    )
    L += [
        "`kube-sentinel analyze` run as a subprocess on each part's generated JSONL (`tests/bench/k8s_corpus/`): "
        "GA (`ga.py`'s `grouping_accuracy`) of its `--explain` group against the true "
        "namespace/workload/container/template key, and its priority against the SRE label, with "
        "`config/rules.yaml`; its rule against the Go tool's choice (`score.go_rule`, the raw line as Go "
        "matched it) with `upstream-rules.yaml`. GA and agreements count lines (the loudest groups of "
        "the Zipf-like draw weigh most); the per-group columns weigh every true group the same "
        "(exact: its lines, and only they, form one of our groups). Worst splits and merges are in the "
        "JSON report.",
        "",
    ]
    return L


# --- 2. classification ------------------------------------------------------------------------------


def classification_lines(n: int = 100_000) -> list[str]:
    """Messages as the classifier sees them: the parsed messages of the benchmark's Kubernetes mix."""
    from sentinel.core.parsing import parse_message
    from sentinel.sources.loki_json import parse_streams
    from tests.bench.k8s_mix import pages

    out: list[str] = []
    for body in pages(n):
        out.extend(parse_message(e.line)[0] for e in parse_streams(body))
    return out


def section_classification(repeat: int = 5) -> dict[str, Any]:
    from sentinel.config import load_rules

    ruleset = load_rules(RULES).ruleset
    lines = classification_lines()
    # the Python ``re`` peer: the same rules, pattern by pattern, first match wins
    compiled = [(r, re.compile(r.pattern) if r.pattern else None) for r in ruleset.rules]

    def with_re(msg: str) -> str:
        for r, rx in compiled:
            if rx is None or rx.search(msg) is not None:
                if r.keywords and not any(k in msg.lower() for k in r.keywords):
                    continue
                return r.name
        return "default"

    classify = ruleset.classify
    ours_names = [classify(m).name for m in lines]
    peer_names = [with_re(m) for m in lines]
    agree = sum(a == b for a, b in zip(ours_names, peer_names, strict=True)) / len(lines)

    def timed(fn: Callable[[str], object]) -> float:
        best = float("inf")
        for _ in range(repeat):
            c0 = time.process_time()
            for m in lines:
                fn(m)
            best = min(best, time.process_time() - c0)
        return best

    t_re2 = timed(classify)
    t_re = timed(with_re)
    hits: dict[str, int] = {}
    for name in ours_names:
        hits[name] = hits.get(name, 0) + 1
    return {
        "lines": len(lines),
        "distinct_lines": len(set(lines)),
        "rules": len(ruleset.rules),
        "lines_per_s_re2_set": len(lines) / t_re2,
        "lines_per_s_python_re": len(lines) / t_re,
        "ratio": t_re / t_re2,
        "agreement": agree,
        "rule_mix": dict(sorted(hits.items(), key=lambda kv: -kv[1])),
        "repeat": repeat,
        "targets": [
            target(
                "classification throughput, upstream rules (RE2 Set)",
                len(lines) / t_re2,
                500_000,
                higher=True,
                unit="lines/s",
            )
        ],
    }


# --- 2b. parsing long lines -----------------------------------------------------------------------

# Pieces that made the old logfmt regex rescan from every position, and others that stress a scanner.
PARSE_UNITS = [
    "a",
    "ab ",
    "k=",
    "=",
    '"',
    'k="',
    "\\",
    '\\"',
    "x=y ",
    "é",
    "\U0001f600",
    "[",
    "{",
    " ",
    "0",
    "err",
    "\t",
    "\n",
    "\n\tat ",
    "msg=",
    ' msg="',
]


def parse_lines(size: int = 1_000_000) -> dict[str, list[str]]:
    """For each format, lines of ``size`` characters built from each unit."""
    out: dict[str, list[str]] = {}
    for unit in PARSE_UNITS:
        f = (unit * (size // len(unit) + 1))[:size]
        forms = {
            "raw": f,
            "json": json.dumps({"level": "error", "msg": f}),
            "logfmt": 'level=error ts=1 msg="a" ' + f,
            "klog": "E1201 10:00:00.000001       1 r.go:1] " + f,
            "plain": "ERROR " + f,
            "nginx": '2026/12/01 10:00:00 [error] 31#31: *7 x, client: 1, request: "GET /' + f,
            "go-panic": "panic: x\n" + f,
            "python-traceback": "Traceback (most recent call last):\n" + f,
            "java-trace": "java.lang.IllegalStateException: x\n\tat " + f,
        }
        for name, line in forms.items():
            out.setdefault(name, []).append(line)
    return out


def section_parsing(repeat: int = 3) -> dict[str, Any]:
    """The worst parse time of a 1 MB line per format (CPU time, best of ``repeat``)."""
    from sentinel.core.parsing import parse_message

    rows = []
    worst_all = 0.0
    for fmt, lines in parse_lines().items():
        worst, worst_unit = 0.0, ""
        for unit, line in zip(PARSE_UNITS, lines, strict=True):
            best = float("inf")
            for _ in range(repeat):
                c0 = time.process_time()
                parse_message(line)
                best = min(best, time.process_time() - c0)
            if best > worst:
                worst, worst_unit = best, unit
        rows.append({"format": fmt, "worst_ms": worst * 1000, "worst_unit": worst_unit, "chars": len(lines[0])})
        worst_all = max(worst_all, worst)
    return {
        "rows": rows,
        "repeat": repeat,
        "targets": [
            target("parse time of a 1 MB line, worst format and content", worst_all * 1000, 50, higher=False, unit="ms")
        ],
    }


# --- 3. whole pipeline ------------------------------------------------------------------------------


def pipeline_child(n: int, *, trace: bool = False, steady: bool = False) -> dict[str, Any]:
    """In a fresh process: Loki bodies -> parse_streams -> process -> settle -> TinyDB record -> flush.

    ``steady``: first an hour of the same cluster is read, grouped and committed (not timed), then
    the next hour is timed, as every poll after a start sees it: the pipeline knows the statements
    and the store holds the groups. Otherwise the timed hour is the first one after a start."""
    cpu = pin_one_core()
    from sentinel.config import load_rules
    from sentinel.core.impact import LifecycleSettings
    from sentinel.engine.pipeline import Batch, Pipeline, paused_gc
    from sentinel.sources.loki_json import parse_streams
    from sentinel.store.tinydb import TinyDBStore
    from tests.bench.k8s_mix import HOUR_NS, T0_NS, pages
    from tests.bench.persistence import peak_rss_mib

    if trace:
        import tracemalloc

        tracemalloc.start()
    ruleset = load_rules(RULES).ruleset
    rss_start = peak_rss_mib() * 1024
    pipe = Pipeline(rules=ruleset)
    hour = 1 if steady else 0
    with tempfile.TemporaryDirectory() as tmp:
        store = TinyDBStore(Path(tmp) / "sentinel.json")
        if steady:
            first = Batch()
            with paused_gc():
                for body in pages(n):
                    pipe.process(parse_streams(body), into=first)
            pipe.settle(first)
            store.record(list(first.deltas.values()), now=(T0_NS + HOUR_NS) / 1e9, lifecycle=LifecycleSettings())
            store.flush()
            del first
        batch = Batch()
        wall = cpu_t = 0.0
        bytes_in = 0
        with paused_gc():  # as PollCycle.poll_once reads and groups a window
            for body in pages(n, hour=hour):  # generating a page is not timed; one page is alive at a time
                bytes_in += len(body)
                t0, c0 = time.perf_counter(), time.process_time()
                pipe.process(parse_streams(body), into=batch)
                wall += time.perf_counter() - t0
                cpu_t += time.process_time() - c0
                del body
        t0, c0 = time.perf_counter(), time.process_time()
        pipe.settle(batch)
        now = (T0_NS + (hour + 1) * HOUR_NS) / 1e9
        with paused_gc():  # as PollCycle.poll_once records and flushes
            store.record(list(batch.deltas.values()), now=now, lifecycle=LifecycleSettings())
            store.flush()
        t_store = time.perf_counter() - t0
        c_store = time.process_time() - c0
        wall += t_store
        cpu_t += c_store
        file_bytes = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        stored = len(store.all_groups())
    out = {
        "lines": n,
        "steady": steady,
        "groups": len(batch.deltas),
        "stored_groups": stored,
        "batch_lines": batch.lines,
        "wall_s": wall,
        "cpu_s": cpu_t,
        "store_wall_s": t_store,
        "store_cpu_s": c_store,
        "read_group_cpu_s": cpu_t - c_store,  # parse_streams + process: everything but the store
        "bytes_in": bytes_in,
        "store_file_bytes": file_bytes,
        "rss_after_imports_kb": rss_start,
        "peak_rss_kb": peak_rss_mib() * 1024,
        "cpu_pinned": cpu,
    }
    if trace:
        import tracemalloc

        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out


def instructions_child(mode: str, bodies_path: str) -> None:
    """Under valgrind: load the pickled bodies and, with ``mode`` "run", read and group them."""
    import pickle

    from sentinel.config import load_rules
    from sentinel.engine.pipeline import Batch, Pipeline, paused_gc
    from sentinel.sources.loki_json import parse_streams

    ruleset = load_rules(RULES).ruleset
    with open(bodies_path, "rb") as fh:
        bodies = pickle.load(fh)  # noqa: S301 - our own file, written just before
    if mode == "run":
        pipe, batch = Pipeline(rules=ruleset), Batch()
        with paused_gc():
            for body in bodies:
                pipe.process(parse_streams(body), into=batch)


def pipeline_instructions(n: int = 100_000) -> dict[str, Any] | None:
    """Instructions executed by ``parse_streams`` + ``process`` of ``n`` lines (valgrind's callgrind,
    without cache simulation): the same on every run and machine, where CPU time on a shared VM
    drifts by a quarter. The run's count less that of a run that only loads; None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    import pickle

    from tests.bench.k8s_mix import pages

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies.pickle"
        bodies.write_bytes(pickle.dumps(list(pages(n))))
        for mode in ("load", "run"):
            proc = subprocess.run(
                [valgrind, "--tool=callgrind", "--cache-sim=no", "--callgrind-out-file=/dev/null",
                 sys.executable, "-m", "tests.bench.run", "--instructions-child", mode, str(bodies)],
                cwd=ROOT, capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONHASHSEED": "0"},
            )  # fmt: skip
            found = re.search(r"Collected : (\d+)", proc.stderr)
            if proc.returncode != 0 or found is None:
                raise RuntimeError(f"valgrind {mode} failed ({proc.returncode}): {proc.stderr[-1000:]}")
            counts[mode] = int(found.group(1))
    return {"lines": n, "instructions": counts["run"] - counts["load"], "valgrind": valgrind}


def section_pipeline(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), repeats: tuple[int, ...] = (5, 5, 1)
) -> dict[str, Any]:
    rows = []
    for n, rep in zip(sizes, repeats, strict=True):
        runs = [child(["--pipeline-child", str(n)], timeout=1200) for _ in range(rep)]
        best = min(runs, key=lambda r: r["cpu_s"])
        walls = [r["wall_s"] for r in runs]
        rows.append(
            {
                "lines": n,
                "runs": rep,
                "groups": best["groups"],
                "best_cpu_s": best["cpu_s"],
                "best_wall_s": min(walls),
                "median_wall_s": statistics.median(walls),
                "lines_per_cpu_s": n / best["cpu_s"],
                "lines_per_wall_s": n / min(walls),
                "us_per_line_cpu": best["cpu_s"] / n * 1e6,
                "store_record_flush_s": best["store_wall_s"],
                "best_read_group_cpu_s": min(r["read_group_cpu_s"] for r in runs),
                "median_read_group_cpu_s": statistics.median(r["read_group_cpu_s"] for r in runs),
                "peak_rss_mb": max(r["peak_rss_kb"] for r in runs) / 1024,
                "rss_after_imports_mb": best["rss_after_imports_kb"] / 1024,
                "bytes_per_line_in": best["bytes_in"] / n,
                "store_file_mb": best["store_file_bytes"] / 1e6,
            }
        )
    for r in rows:
        r["rss_growth_mb"] = r["peak_rss_mb"] - r["rss_after_imports_mb"]
    traced = child(["--pipeline-child", "100000", "--trace"], timeout=1200)
    # a later hour of the same cluster, after the first was committed: what every poll after a start sees
    steady_runs = [child(["--pipeline-child", "100000", "--steady"], timeout=1200) for _ in range(5)]
    steady = min(steady_runs, key=lambda r: r["cpu_s"])
    by_n = {r["lines"]: r for r in rows}
    main = by_n.get(100_000, rows[-1])
    first, last = rows[0], rows[-1]
    time_growth = last["us_per_line_cpu"] / first["us_per_line_cpu"]
    # memory: from the middle size to the largest (at 10k the growth over imports is within noise)
    mid = rows[-2] if len(rows) > 1 else first
    mem_ratio = max(last["rss_growth_mb"], 1e-9) / max(mid["rss_growth_mb"], 1e-9)
    size_ratio = last["lines"] / mid["lines"]
    return {
        "rows": rows,
        "steady_100k": {
            "runs": len(steady_runs),
            "groups": steady["groups"],
            "stored_groups": steady["stored_groups"],
            "best_cpu_s": steady["cpu_s"],
            "lines_per_cpu_s": 100_000 / steady["cpu_s"],
            "best_read_group_cpu_s": min(r["read_group_cpu_s"] for r in steady_runs),
            "store_record_flush_s": steady["store_wall_s"],
        },
        "tracemalloc_peak_mb_100k": traced.get("tracemalloc_peak_bytes", 0) / 1e6,
        "instructions_100k": pipeline_instructions(),
        "per_line_time_growth_10k_to_max": time_growth,
        "memory_growth_vs_lines": mem_ratio / size_ratio,
        "memory_growth_from": mid["lines"],
        "linear_time": time_growth <= 1.5,
        "linear_memory": mem_ratio <= size_ratio,
        "targets": [
            target(
                "pipeline throughput, 100k lines, one core (CPU time)",
                main["lines_per_cpu_s"],
                100_000,
                higher=True,
                unit="lines/s",
            ),
            target(
                "pipeline throughput, 100k lines, one core (wall, best run)",
                main["lines_per_wall_s"],
                100_000,
                higher=True,
                unit="lines/s",
            ),
            target(
                "parse_streams + process (the store apart), 100k lines, one core (CPU-s, best run)",
                main["best_read_group_cpu_s"],
                0.85,
                higher=False,
                unit="s",
            ),
            target("pipeline peak RSS, 100k lines (whole process)", main["peak_rss_mb"], 300, higher=False, unit="MB"),
            target(
                "per-line time at the largest size / at 10k (linear: <= 1.5)", time_growth, 1.5, higher=False, unit="x"
            ),
        ],
    }


# --- 4. store ---------------------------------------------------------------------------------------

TEMPLATES = [
    ("crashloop-backoff", "P1", "Back-off restarting failed container {c} in pod <*>"),
    ("oom-killed", "P1", "OOMKilled: container {c} exceeded memory limit <*>"),
    ("panic", "P1", "panic: runtime error: invalid memory address or nil pointer dereference in {c}"),
    ("database-error", "P2", "database error: pq: too many clients already ({c})"),
    ("tls-error", "P2", "x509: certificate has expired or is not yet valid for {c}"),
    ("permission-denied", "P2", "secrets is forbidden: User <*> cannot list resource secrets ({c})"),
    ("connection-refused", "P3", "dial tcp <*>: connect: connection refused ({c})"),
    ("timeout", "P3", "context deadline exceeded while calling {c} after <*>"),
    ("generic-error", "P4", "error handling request <*> in {c}"),
    ("default", "P4", "unexpected state in {c}: <*>"),
]


def store_deltas(n: int, *, now: float, seed: int = 11, prefix: str = "g") -> list[Any]:
    """``n`` distinct groups over 40 namespaces and 800 workloads, an hour of per-minute counts each."""
    from sentinel.core.model import GroupDelta, Priority

    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ns = f"team-{i % 40:02d}"
        wl = f"svc-{i % 800:03d}"
        rule, prio, tpl = TEMPLATES[i % len(TEMPLATES)]
        template = tpl.format(c=f"op{i}")
        last = now - rnd.uniform(0, 3000)
        first = last - rnd.uniform(0, 7200)
        minutes = {int(last // 60) - k: rnd.randint(1, 20) for k in range(rnd.randint(1, 30))}
        out.append(
            GroupDelta(
                key=f"{prefix}{i:06d}",
                namespace=ns,
                workload=wl,
                container="app",
                template=template,
                rule=rule,
                priority=Priority(prio),
                count=sum(minutes.values()),
                first_seen=first,
                last_seen=last,
                pods={f"{wl}-7d9c8b6f5-{k:05d}": None for k in range(1 + i % 3)},
                samples=[template.replace("<*>", str(rnd.randint(1, 10**6))) for _ in range(3)],
                minute_counts=minutes,
                level="error",
                template_key=f"t{i:06d}",
                message=template,
            )
        )
    return out


def build_big_store(n: int = 50_000, *, now: float) -> Any:
    from sentinel.core.impact import LifecycleSettings
    from sentinel.store.memory import MemoryStore

    store = MemoryStore()
    store.record(store_deltas(n, now=now), now=now, lifecycle=LifecycleSettings())
    return store


def section_store(runs: int = 60) -> dict[str, Any]:
    from sentinel.core.impact import LifecycleSettings
    from sentinel.core.model import Priority, Status
    from sentinel.store.base import GroupQuery
    from sentinel.store.memory import MemoryStore
    from sentinel.store.tinydb import TinyDBStore

    now = time.time()
    life = LifecycleSettings()
    # upsert of 10k groups: new into an empty store, then the same 10k again (updates)
    upsert: dict[str, list[float]] = {
        "insert 10k (memory)": [],
        "update 10k (memory)": [],
        "insert 10k + flush (TinyDB)": [],
    }
    for _ in range(5):
        deltas = store_deltas(10_000, now=now)
        m = MemoryStore()
        t0 = time.perf_counter()
        m.record(deltas, now=now, lifecycle=life)
        upsert["insert 10k (memory)"].append(time.perf_counter() - t0)
        again = store_deltas(10_000, now=now)
        t0 = time.perf_counter()
        m.record(again, now=now, lifecycle=life)
        upsert["update 10k (memory)"].append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            t = TinyDBStore(Path(tmp) / "s.json")
            deltas = store_deltas(10_000, now=now)
            t0 = time.perf_counter()
            t.record(deltas, now=now, lifecycle=life)
            t.flush()
            upsert["insert 10k + flush (TinyDB)"].append(time.perf_counter() - t0)

    big = build_big_store(50_000, now=now)
    queries: dict[str, Callable[[], object]] = {
        "page 1, default sort (priority)": lambda: big.list_groups(GroupQuery()),
        "page 1, namespace filter": lambda: big.list_groups(GroupQuery(namespace="team-07")),
        "page 1, text search": lambda: big.list_groups(GroupQuery(search="deadline")),
        "page 1, sort=count": lambda: big.list_groups(GroupQuery(sort="count")),
        "page 3, priority P1 + status open": lambda: big.list_groups(
            GroupQuery(priorities=(Priority.P1,), statuses=(Status.OPEN,), page=3)
        ),
        "stats": lambda: big.stats(now=now),
    }
    rows = []
    targets = []
    one = store_deltas(1, now=now, prefix="w")  # a write: one group, what a quiet poll does
    for name, fn in queries.items():
        warm: list[float] = []
        fn()
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - t0)
        cold: list[float] = []  # the first read after a write (every poll writes)
        for _ in range(runs):
            big.record(one, now=now, lifecycle=life)
            t0 = time.perf_counter()
            fn()
            cold.append(time.perf_counter() - t0)
        row = {
            "query": name,
            "runs": runs,
            "p50_ms": pct(warm, 50) * 1e3,
            "p99_ms": pct(warm, 99) * 1e3,
            "cold_runs": len(cold),
            "cold_p50_ms": pct(cold, 50) * 1e3,
            "cold_p99_ms": pct(cold, 99) * 1e3,
        }
        rows.append(row)
        targets.append(
            target(f"store, 50k groups: {name}, p99 (repeated reads)", row["p99_ms"], 50, higher=False, unit="ms")
        )
        targets.append(
            target(
                f"store, 50k groups: {name}, p99 (first read after a write)",
                row["cold_p99_ms"],
                50,
                higher=False,
                unit="ms",
            )
        )
    return {
        "upsert": [
            {"what": k, "runs": len(v), "best_ms": min(v) * 1e3, "median_ms": statistics.median(v) * 1e3}
            for k, v in upsert.items()
        ],
        "rows": rows,
        "groups": 50_000,
        "targets": targets,
    }


# --- 5. API -----------------------------------------------------------------------------------------

API_CONFIG = """\
loki:
  poll_interval: 30s
  lookback: 1h
kubernetes:
  in_cluster: false
  kubeconfig: /nonexistent/kube-sentinel-bench-has-no-cluster
remediation:
  enabled: true
  dry_run: true
rules_file: {rules}
store:
  type: memory
"""


def bench_runtime(tmp: Path, store: Any) -> Any:
    from sentinel.bootstrap import build_runtime
    from sentinel.sources.files import FileSource

    config = tmp / "config.yaml"
    config.write_text(API_CONFIG.format(rules=RULES), encoding="utf-8")
    return build_runtime(config, source=FileSource(DEMO / "logs.jsonl", live=True), store=store, env={})


def api_server_child(port_file: str) -> None:
    """Serve ``create_app(runtime)`` over a 50k-group store on 127.0.0.1 until killed."""
    import uvicorn

    from sentinel.api.app import create_app

    store = build_big_store(50_000, now=time.time())
    with tempfile.TemporaryDirectory() as tmp:
        rt = bench_runtime(Path(tmp), store)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(rt), log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        Path(port_file).write_text(str(port))
        server.run(sockets=[sock])


def _load(
    url: str, path: str, params: dict[str, str], clients: int, per_client: int
) -> tuple[list[float], list[str], float]:
    """``clients`` threads, one keep-alive connection each, ``per_client`` GETs each, started together."""
    import httpx

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        mine: list[float] = []
        with httpx.Client(base_url=url, timeout=60) as c:
            barrier.wait()
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = c.get(path, params=params)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors.append(str(r.status_code))
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return lat, errors, time.perf_counter() - t0


def section_api(clients: int = 20, per_client: int = 25) -> dict[str, Any]:
    try:
        import sentinel.api.app  # noqa: F401
    except ImportError as err:
        return {
            "skipped": f"not measured: API not present ({err})",
            "targets": [target("API /api/errors p99, 20 clients", None, 0, higher=False, unit="ms")],
        }
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.run", "--api-server", str(port_file)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 180
            url = ""
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"API server exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
                if port_file.exists() and port_file.read_text():
                    url = f"http://127.0.0.1:{port_file.read_text()}"
                    with contextlib.suppress(httpx.HTTPError):
                        if httpx.get(url + "/health", timeout=2).status_code == 200:
                            break
                time.sleep(0.2)
            else:
                raise RuntimeError("API server did not start in 180 s")
            rows = []
            for path, params in (("/api/errors", {"page_size": "100"}), ("/api/stats", {})):
                with httpx.Client(base_url=url, timeout=30) as c:
                    warm = c.get(path, params=params)
                    warm.raise_for_status()
                    size = len(warm.content)
                lat, errors, elapsed = _load(url, path, params, clients, per_client)
                rows.append(
                    {
                        "endpoint": path + ("?page_size=100" if params else ""),
                        "clients": clients,
                        "requests": len(lat),
                        "errors": len(errors),
                        "p50_ms": pct(lat, 50) * 1e3,
                        "p99_ms": pct(lat, 99) * 1e3,
                        "req_per_s": len(lat) / elapsed,
                        "response_bytes": size,
                    }
                )
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
    return {"rows": rows, "groups": 50_000, "targets": []}


# --- 6. console -------------------------------------------------------------------------------------


def console_child(runs: int) -> dict[str, Any]:
    from streamlit.testing.v1 import AppTest

    from sentinel.engine.runtime import install, uninstall

    store = build_big_store(50_000, now=time.time())
    with tempfile.TemporaryDirectory() as tmp:
        rt = bench_runtime(Path(tmp), store)
        install(rt)
        try:
            times = []
            for _ in range(runs):
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
                at.run()
                at.switch_page("pages/errors.py")
                t0 = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - t0)
                if at.exception:
                    raise RuntimeError(f"the Errors page raised: {[e.value for e in at.exception]}")
            rows = sum(len(df.value) for df in at.dataframe if df.key == "queue_table")
        finally:
            uninstall()
    return {"times": times, "queue_rows_shown": rows}


def section_console(runs: int = 5) -> dict[str, Any]:
    if not (ROOT / "app.py").exists() or not (ROOT / "pages" / "errors.py").exists():
        return {
            "skipped": "not measured: console not present",
            "targets": [target("console: Errors page render, 50k groups", None, 1.5, higher=False, unit="s")],
        }
    res = child(["--console-child", str(runs)], timeout=900)
    t = res["times"]
    return {
        "runs": len(t),
        "first_s": t[0],
        "median_s": statistics.median(t),
        "max_s": max(t),
        "min_s": min(t),
        "groups": 50_000,
        "queue_rows_shown": res["queue_rows_shown"],
        "targets": [
            target(
                "console: Errors page render with 50k groups (median)",
                statistics.median(t),
                1.5,
                higher=False,
                unit="s",
            )
        ],
    }


# --- report -----------------------------------------------------------------------------------------


# --- 7. Remediation decisions of one poll -----------------------------------------------------------

DECISION_SIZES = (1_000, 10_000, 100_000)


def decisions_child(n: int) -> dict[str, Any]:
    """In a fresh process: a poll's remediation step over ``n`` new groups, shipped rules, dry-run, no cluster.

    The groups are stored first (not timed), each given one of the shipped rules in turn, as a
    first start on a busy cluster would bring them; the timed part is ``AutoRemediation.run``:
    every decision, the audit records and the safety state (one load and one save per poll).
    """
    import logging

    from sentinel.core.impact import LifecycleSettings
    from sentinel.store.memory import MemoryStore

    logging.disable(logging.INFO)  # the per-poll INFO line is not what is measured
    pin_one_core()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(API_CONFIG.format(rules=ROOT / "config" / "rules.yaml"), encoding="utf-8")
        from sentinel.bootstrap import build_runtime
        from sentinel.sources.files import FileSource

        store = MemoryStore()
        rt = build_runtime(config, source=FileSource(DEMO / "logs.jsonl", live=True), store=store, env={})
        rules = [r.name for r in rt.rules.all_rules if r.name != "default"]
        deltas = store_deltas(n, now=now, prefix="d")
        for i, d in enumerate(deltas):
            d.rule = rules[i % len(rules)]
        changes = store.record(deltas, now=now, lifecycle=LifecycleSettings())
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        decided = rt.autoremediation.run(changes)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        records = store.stats(now=now).remediations_by_result
        return {
            "groups": n,
            "decisions": decided,
            "outcomes": dict(sorted(rt.last_outcomes.items())),
            "records": sum(records.values()),
            "wall_s": wall,
            "cpu_s": cpu,
            "ms_per_decision": wall * 1e3 / max(1, decided),
        }


def section_decisions(sizes: tuple[int, ...] = DECISION_SIZES) -> dict[str, Any]:
    rows = [child(["--decisions-child", str(n)], timeout=1800) for n in sizes]
    flat = rows[-1]["ms_per_decision"] / max(1e-9, rows[0]["ms_per_decision"])
    return {
        "rows": rows,
        "targets": [
            target(
                f"poll decisions over {rows[-1]['groups']:,} new groups, one core",
                rows[-1]["wall_s"],
                30.0,
                higher=False,
                unit="s",
            ),
            target(
                f"ms per decision, {rows[-1]['groups']:,} vs {rows[0]['groups']:,} groups",
                flat,
                2.0,
                higher=False,
                unit="x",
            ),
        ],
    }


def _f(v: Any, nd: int = 1) -> str:
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(_f(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return out + [""]


def markdown(rep: dict[str, Any]) -> str:
    m = rep["machine"]
    L = [
        "# Kube Sentinel benchmark report",
        "",
        f"Generated {rep['generated']} by `python -m tests.bench.run` in {rep['total_seconds']:.0f} s.",
        "",
        f"Machine: {m['cores']} cores ({m['cores_usable']} usable), {m['cpu']}, Python {m['python']}, "
        f"{m['platform']}. Load average (1/5/15 min) at start {m['loadavg']}, at end {rep['loadavg_end']}: "
        "other work shared this machine, so times are best-of/median of repeats and CPU time is shown "
        "beside wall time. Compare ratios to the peer (measured in the same run) across machines.",
        "",
        "## Targets",
        "",
    ]
    trows = []
    for name in SECTIONS:
        sec = rep["sections"].get(name, {})
        for t in sec.get("targets", []):
            val = (
                "—"
                if t["value"] is None
                else f"{_f(t['value'], 3 if t['unit'] in ('GA', 'x', 'share') else 1)} {t['unit']}"
            )
            cmp = ">=" if "throughput" in t["target"] or t["unit"] in ("GA", "share") else "<="
            goal = f"{t['goal']:.2f}" if t["unit"] in ("GA", "x", "share") else _f(t["goal"])
            trows.append([t["target"], f"{cmp} {goal} {t['unit']}", val, t["verdict"], t["margin"]])
        if "error" in sec:
            trows.append([f"section {name}", "—", "—", "ERROR", sec["error"].splitlines()[-1][:120]])
        if "skipped" in sec:
            trows.append([f"section {name}", "—", "—", "NOT MEASURED", sec["skipped"]])
    L += _table(["target", "goal", "measured", "verdict", "by how much"], trows)

    s = rep["sections"]
    g = s.get("grouping", {})
    L += ["## 1. Grouping (Loghub-2k DEV) and fingerprinting speed, beside Drain3 default", ""]
    if "rows" in g:
        L += _table(
            ["system", "GA ours", "GA Drain3", "groups ours", "groups Drain3", "true groups"],
            [
                [
                    r["system"],
                    f"{r['ga_ours']:.3f}",
                    f"{r['ga_drain3']:.3f}",
                    r["groups_ours"],
                    r["groups_drain3"],
                    r["groups_true"],
                ]
                for r in g["rows"]
            ]
            + [["**mean**", f"**{g['mean_ga_ours']:.3f}**", f"**{g['mean_ga_drain3']:.3f}**", "", "", ""]],
        )
        L += _table(
            ["", "ours", "Drain3", "ratio ours/Drain3"],
            [
                [
                    "lines/s (wall, best of repeats)",
                    g["lines_per_s_ours"],
                    g["lines_per_s_drain3"],
                    f"{g['speed_ratio_wall']:.2f}x",
                ],
                [
                    "lines per CPU-second",
                    g["lines_per_cpu_s_ours"],
                    g["lines_per_cpu_s_drain3"],
                    f"{g['speed_ratio_cpu']:.2f}x",
                ],
            ],
        )
        L += [
            f"{g['lines']:,} lines per pass, best of {g['repeat'] + 1} passes each (a pass of each in turn), scored by `ga.py`'s own "
            "`evaluate`/`grouping_accuracy`. Fresh state per system; one configuration."
            + (f" Nondeterministic: {g['nondeterministic']}" if g["nondeterministic"] else ""),
            "",
        ]
    L += _error(g)

    L += _k8s_corpus_markdown(s.get("k8s_corpus", {}))

    c = s.get("classification", {})
    L += ["## 2. Classification with the upstream rules, beside Python `re`", ""]
    if "lines" in c:
        L += _table(
            ["", "RE2 Set (RuleSet.classify)", "Python re, pattern by pattern", "ratio"],
            [["lines per CPU-second", c["lines_per_s_re2_set"], c["lines_per_s_python_re"], f"{c['ratio']:.2f}x"]],
        )
        L += [
            f"{c['lines']:,} parsed messages of the Kubernetes mix below ({c['distinct_lines']:,} distinct), "
            f"{c['rules']} enabled upstream rules, first match wins, no cache; best of {c['repeat']}. "
            f"Both give the same rule on {c['agreement'] * 100:.2f}% of lines. Rule mix: "
            + ", ".join(f"{k} {v:,}" for k, v in c["rule_mix"].items()),
            "",
        ]
    L += _error(c)

    p = s.get("pipeline", {})
    pz = s.get("parsing", {})
    L += ["## 2b. Parsing a 1 MB line: the worst content per format (CPU ms, best of repeats)", ""]
    if "rows" in pz:
        L += _table(
            ["format", "worst ms", "worst content unit"],
            [[r["format"], f"{r['worst_ms']:.1f}", repr(r["worst_unit"])] for r in pz["rows"]],
        )
    L += _error(pz) + _skipped(pz)
    L += ["## 3. Whole pipeline: Loki body -> parse_streams -> process -> settle -> TinyDB record -> flush", ""]
    if "rows" in p:
        L += _table(
            [
                "lines",
                "runs",
                "groups",
                "lines/CPU-s",
                "lines/s wall (best)",
                "µs/line (CPU)",
                "parse+process CPU-s (best / median)",
                "wall median s",
                "store+flush s",
                "peak RSS MB",
                "RSS after imports MB",
                "growth MB",
                "input B/line",
            ],
            [
                [
                    r["lines"],
                    r["runs"],
                    r["groups"],
                    r["lines_per_cpu_s"],
                    r["lines_per_wall_s"],
                    f"{r['us_per_line_cpu']:.2f}",
                    f"{r['best_read_group_cpu_s']:.3f} / {r['median_read_group_cpu_s']:.3f}",
                    f"{r['median_wall_s']:.2f}",
                    f"{r['store_record_flush_s']:.3f}",
                    f"{r['peak_rss_mb']:.0f}",
                    f"{r['rss_after_imports_mb']:.0f}",
                    f"{r['rss_growth_mb']:.0f}",
                    f"{r['bytes_per_line_in']:.0f}",
                ]
                for r in p["rows"]
            ],
        )
        L += [
            f"Each run is a fresh subprocess pinned to one CPU; bodies of 5,000 entries (Loki's maximum per "
            f"query) are generated outside the timer, one at a time. Peak RSS is the child's `VmHWM` "
            f"(whole process, interpreter and imports included, nothing subtracted). tracemalloc peak of "
            f"the 100k run: {p['tracemalloc_peak_mb_100k']:.0f} MB. Per-line CPU time at the largest size is "
            f"{p['per_line_time_growth_10k_to_max']:.2f}x that at 10k "
            f"({'linear' if p['linear_time'] else 'NOT linear'}); from {p.get('memory_growth_from', 0):,} lines to "
            f"the largest size, memory growth over imports rises {p['memory_growth_vs_lines']:.2f}x as fast as "
            "the line count "
            f"({'at most linear' if p['linear_memory'] else 'faster than linear'}: memory follows the number "
            "of groups and the bounded caches, not the line count).",
            "",
        ]
        sd = p.get("steady_100k")
        if sd:
            L += [
                f"A later hour (the pipeline and the store already hold the first hour's {sd['stored_groups']:,} "
                f"groups, as every poll after a start): {sd['lines_per_cpu_s']:,.0f} lines/CPU-s "
                f"({sd['best_cpu_s']:.3f} CPU-s for 100k lines, best of {sd['runs']}; parse+process "
                f"{sd['best_read_group_cpu_s']:.3f} s, store+flush {sd['store_record_flush_s']:.3f} s). Most lines "
                "of the mix are new in each hour (ids, hashes, trace ids), so knowing the statements gains little.",
                "",
            ]
        ins = p.get("instructions_100k")
        L += [
            (
                f"Instructions executed by `parse_streams` + `process` of the 100k lines (valgrind callgrind, the "
                f"same on every run and machine; CPU time on a shared VM drifts by a quarter): "
                f"{ins['instructions'] / 1e6:,.0f} M, {ins['instructions'] / ins['lines']:,.0f} per line."
            )
            if ins
            else "Instructions: not counted (valgrind is not installed).",
            "",
        ]
    L += _error(p)

    st = s.get("store", {})
    L += ["## 4. Store (MemoryStore, the query engine TinyDBStore reads through)", ""]
    if "rows" in st:
        L += _table(
            ["upsert", "runs", "best ms", "median ms"],
            [[u["what"], u["runs"], u["best_ms"], u["median_ms"]] for u in st["upsert"]],
        )
        L += _table(
            ["with 50,000 groups stored", "runs", "p50 ms", "p99 ms", "after a write: runs", "p50 ms", "p99 ms"],
            [
                [
                    r["query"],
                    r["runs"],
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    r["cold_runs"],
                    f"{r['cold_p50_ms']:.2f}",
                    f"{r['cold_p99_ms']:.2f}",
                ]
                for r in st["rows"]
            ],
        )
        L += [
            "Repeated reads: the store unchanged between reads. After a write: each read follows a one-group "
            "`record` (what every poll does), so caches keyed on the write version are cold.",
            "",
        ]
    L += _error(st)

    a = s.get("api", {})
    L += ["## 5. API under 20 concurrent clients (uvicorn, loopback, 50,000 groups)", ""]
    if "rows" in a:
        L += _table(
            ["endpoint", "clients", "requests", "errors", "p50 ms", "p99 ms", "req/s", "response bytes"],
            [
                [
                    r["endpoint"],
                    r["clients"],
                    r["requests"],
                    r["errors"],
                    f"{r['p50_ms']:.1f}",
                    f"{r['p99_ms']:.1f}",
                    f"{r['req_per_s']:.1f}",
                    r["response_bytes"],
                ]
                for r in a["rows"]
            ],
        )
        L += [
            "Server: `create_app(runtime)` on uvicorn in its own process (one worker); clients: 20 threads with "
            "one keep-alive httpx connection each, in this process.",
            "",
        ]
    L += _skipped(a) + _error(a)

    co = s.get("console", {})
    L += ["## 6. Console: Errors page render (AppTest), 50,000 groups", ""]
    if "runs" in co:
        L += _table(
            ["runs", "first s", "median s", "min s", "max s", "queue rows shown"],
            [
                [
                    co["runs"],
                    f"{co['first_s']:.2f}",
                    f"{co['median_s']:.2f}",
                    f"{co['min_s']:.2f}",
                    f"{co['max_s']:.2f}",
                    co["queue_rows_shown"],
                ]
            ],
        )
        L += [
            "Time of `AppTest.run()` on pages/errors.py after switching to it, with the runtime installed "
            "(script run, queries, table and charts built; no browser).",
            "",
        ]
    L += _skipped(co) + _error(co)

    de = s.get("decisions", {})
    L += ["## 7. Remediation decisions of one poll (shipped rules, dry-run, no cluster)", ""]
    if "rows" in de:
        L += _table(
            ["new groups", "decisions", "audit records", "wall s", "CPU s", "ms per decision", "outcomes"],
            [
                [
                    f"{r['groups']:,}",
                    f"{r['decisions']:,}",
                    f"{r['records']:,}",
                    f"{r['wall_s']:.2f}",
                    f"{r['cpu_s']:.2f}",
                    f"{r['ms_per_decision']:.3f}",
                    ", ".join(f"{k} {v:,}" for k, v in r["outcomes"].items()),
                ]
                for r in de["rows"]
            ],
        )
        L += [
            "`AutoRemediation.run` over a poll's new groups (stored beforehand, not timed), in a fresh process "
            "pinned to one core: the decisions, the audit records and the safety state (one load and one save).",
            "",
        ]
    L += _skipped(de) + _error(de)

    pe = s.get("persistence", {})
    L += _persistence().render(pe) + _skipped(pe) + _error(pe)
    if rep.get("notes"):
        L += ["## Closing note", "", *rep["notes"], ""]
    return "\n".join(L)


def _persistence() -> Any:
    from tests.bench import persistence

    return persistence


def _error(sec: dict[str, Any]) -> list[str]:
    return (
        [f"**Section failed:** `{sec['error'].splitlines()[-1]}`", "", "```", sec["error"], "```", ""]
        if "error" in sec
        else []
    )


def _skipped(sec: dict[str, Any]) -> list[str]:
    return [f"_{sec['skipped']}_", ""] if "skipped" in sec else []


RUNNERS: dict[str, Callable[[], dict[str, Any]]] = {
    "grouping": section_grouping,
    "k8s_corpus": section_k8s_corpus,
    "classification": section_classification,
    "parsing": section_parsing,
    "pipeline": section_pipeline,
    "store": section_store,
    "persistence": lambda: _persistence().section_persistence(),
    "api": section_api,
    "console": section_console,
    "decisions": section_decisions,
}


def run_all(out: Path, only: list[str], notes: Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    rep: dict[str, Any] = {"generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "sections": {}}
    for name in only:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rep["sections"][name] = RUNNERS[name]()
        except Exception:  # noqa: BLE001 - one section failing must not stop the others
            rep["sections"][name] = {"error": traceback.format_exc(), "targets": []}
        rep["sections"][name]["seconds"] = time.perf_counter() - t0
        rep["sections"][name]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        print(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        gc.collect()
    rep["total_seconds"] = time.perf_counter() - started
    rep["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if notes is not None and notes.exists():
        rep["notes"] = notes.read_text(encoding="utf-8").splitlines()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rep, indent=1, default=str), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(rep), encoding="utf-8")
    return rep


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-report", help="report path without suffix (.md and .json written)")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--notes", default=str(HERE / "NOTES.md"), help="closing note appended to the report")
    ap.add_argument("--pipeline-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--instructions-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--steady", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--api-server", help=argparse.SUPPRESS)
    ap.add_argument("--console-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--decisions-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--persistence-child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--render-only", action="store_true", help="re-render the .md from the .json and the notes")
    a = ap.parse_args(argv)
    if a.render_only:
        out = Path(a.out)
        rep = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        if a.notes and Path(a.notes).exists():
            rep["notes"] = Path(a.notes).read_text(encoding="utf-8").splitlines()
        out.with_suffix(".json").write_text(json.dumps(rep, indent=1, default=str), encoding="utf-8")
        out.with_suffix(".md").write_text(markdown(rep), encoding="utf-8")
        return
    if a.instructions_child:
        instructions_child(*a.instructions_child)
        return
    if a.pipeline_child:
        print(json.dumps(pipeline_child(a.pipeline_child, trace=a.trace, steady=a.steady)))
        return
    if a.api_server:
        api_server_child(a.api_server)
        return
    if a.persistence_child:
        n, folder, *url = a.persistence_child
        print(json.dumps(_persistence().persistence_child(int(n), folder, *url)))
        return
    if a.console_child:
        print(json.dumps(console_child(a.console_child)))
        return
    if a.decisions_child:
        print(json.dumps(decisions_child(a.decisions_child)))
        return
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in RUNNERS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    rep = run_all(Path(a.out), only, Path(a.notes) if a.notes else None)
    print(markdown(rep))


if __name__ == "__main__":
    main()
