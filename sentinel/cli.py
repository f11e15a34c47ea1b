"""``kube-sentinel run | demo | check | analyze``.

Exit codes: 0 success, 1 a cycle or a probe failed, 2 invalid configuration or rules.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from sentinel import __version__
from sentinel.config import load_config, load_rules, parse_listen, resolve_rules_path
from sentinel.core.export import csv_text
from sentinel.errors import ConfigError, RedactingFilter, SentinelError, redact

log = logging.getLogger("sentinel")

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def setup_logging(level: str = "INFO", *, json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_format:

        class _Json(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps(
                    {
                        "time": record.created,
                        "level": record.levelname,
                        "logger": record.name,
                        "msg": record.getMessage(),
                    }
                )

        handler.setFormatter(_Json())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no configured secret reaches the log, whoever echoes it
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "apscheduler", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def demo_dir() -> Path:
    return Path(str(resources.files("sentinel") / "demo"))


# -- check --------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    ok = True
    try:
        loaded = load_config(args.config)
    except ConfigError as err:
        print(f"config: INVALID\n{err}", file=sys.stderr)
        return EXIT_INVALID
    rules_path = resolve_rules_path(args.config, loaded.config, args.rules)
    try:
        rules = load_rules(rules_path)
    except ConfigError as err:
        print(f"config: ok ({args.config})\nrules: INVALID\n{err}", file=sys.stderr)
        return EXIT_INVALID
    from sentinel.store.budget import cgroup_limit, retention_warning

    ret = loaded.config.retention
    memory = retention_warning(ret.max_groups, ret.max_records, cgroup_limit())
    for w in loaded.warnings + rules.warnings + ([memory] if memory else []):
        print(f"warning: {w}", file=sys.stderr)
    print(f"config: ok ({args.config})")
    print(f"rules: ok ({rules_path}: {len(rules.ruleset)} enabled of {len(rules.ruleset.all_rules)})")
    if args.loki:
        from sentinel.bootstrap import build_loki_source

        source: Any = build_loki_source(loaded.config)
        try:
            print(f"loki: {source.probe()}")
        except SentinelError as err:
            print(f"loki: FAILED: {redact(err)}", file=sys.stderr)
            ok = False
    if args.cluster:
        from sentinel.bootstrap import build_cluster

        cluster, state = build_cluster(loaded.config)
        if cluster is None:
            print(f"cluster: FAILED: {state}", file=sys.stderr)
            ok = False
        else:
            from sentinel.remediation.rbac import check_permissions, needed_by

            try:
                report = check_permissions(cluster)
            except SentinelError as err:
                print(f"cluster: FAILED: {err}", file=sys.stderr)
                return EXIT_FAILED
            missing = [p for p, allowed in report if not allowed]
            for perm, allowed in report:
                mark = "ok     " if allowed else "MISSING"
                line = f"  {mark} {perm.verb:<7} {perm.resource}" + (f".{perm.group}" if perm.group else "")
                print(line if allowed else f"{line}  (needed by {', '.join(needed_by(perm))})")
            print(f"cluster: {len(report) - len(missing)} of {len(report)} permissions granted")
            if missing:
                print("cluster: missing permissions: apply deploy/kubernetes/rbac.yaml", file=sys.stderr)
                if any(p.resource == "pods/eviction" for p in missing):
                    print(
                        "cluster: without create pods/eviction, restart-pod fails unless its rule sets "
                        "params: {method: delete} (a plain delete, which PodDisruptionBudgets do not stop)",
                        file=sys.stderr,
                    )
                ok = False
    return EXIT_OK if ok else EXIT_FAILED


# -- run / demo ---------------------------------------------------------------------------------


def _serve_or_once(runtime: Any, args: argparse.Namespace, listen: str) -> int:
    from sentinel.engine.runtime import install

    if args.once:
        result = runtime.poll_once()
        runtime.stop()
        window = f"{time.strftime('%H:%M:%S', time.localtime(result.window[0]))}-{time.strftime('%H:%M:%S', time.localtime(result.window[1]))}"
        if result.ok:
            stats = runtime.store.stats(now=runtime.clock())
            print(
                f"poll ok: window {window}, {result.lines} lines -> {result.groups} groups "
                f"({result.new_groups} new), {result.remediations} remediation decisions, {result.duration:.2f}s; "
                f"store: {stats.total_groups} groups "
                + ", ".join(f"{p}={n}" for p, n in sorted(stats.by_priority.items()))
            )
            return EXIT_OK
        print(f"poll FAILED: {redact(result.error)}", file=sys.stderr)
        return EXIT_FAILED
    from sentinel.web import serve

    host, port = parse_listen(listen)
    install(runtime)
    serve(runtime, host=host, port=port)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from sentinel.bootstrap import build_runtime

    try:
        store = None
        if args.store:
            from sentinel.store.tinydb import BACKGROUND_LOAD_ABOVE, TinyDBStore

            store = TinyDBStore(args.store, background_above=BACKGROUND_LOAD_ABOVE)
        runtime = build_runtime(args.config, args.rules, store=store)
    except ConfigError as err:
        print(f"invalid configuration:\n{err}", file=sys.stderr)
        return EXIT_INVALID
    except SentinelError as err:
        print(f"cannot start: {err}", file=sys.stderr)
        return EXIT_FAILED
    return _serve_or_once(runtime, args, args.listen or runtime.config.web.listen)


def build_demo_runtime(*, store_path: str | None = None) -> Any:
    """The demo: bundled logs replayed live, shipped rules, memory store, dry-run, a recorded cluster state."""
    from sentinel.bootstrap import build_runtime
    from sentinel.sources.files import FileSource
    from sentinel.store.tinydb import BACKGROUND_LOAD_ABOVE, TinyDBStore

    d = demo_dir()
    source = FileSource(d / "logs.jsonl", live=True)
    store = TinyDBStore(store_path, background_above=BACKGROUND_LOAD_ABOVE) if store_path else None
    runtime = build_runtime(d / "config.yaml", d / "rules.yaml", source=source, store=store)
    from sentinel.demo.cluster import attach

    attach(runtime)  # a recorded cluster state: context, rollouts and pod status without a cluster
    return runtime


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        runtime = build_demo_runtime(store_path=args.store)
    except SentinelError as err:
        print(f"cannot start the demo: {err}", file=sys.stderr)
        return EXIT_FAILED
    listen = args.listen or "127.0.0.1:8080"
    if not args.once:
        print(f"Kube Sentinel demo: open http://{listen.replace('0.0.0.0', '127.0.0.1')}/ (Ctrl-C to stop)")
    return _serve_or_once(runtime, args, listen)


# -- analyze ------------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace) -> int:
    from sentinel.engine.pipeline import Pipeline
    from sentinel.sources.files import read_entries
    from sentinel.store.base import GroupQuery
    from sentinel.store.memory import MemoryStore

    rules_path = args.rules or str(demo_dir() / "rules.yaml")
    try:
        rules = load_rules(rules_path)
        entries = read_entries(args.file, default_labels={"namespace": args.namespace, "pod": args.pod})
    except ConfigError as err:
        print(f"invalid rules:\n{err}", file=sys.stderr)
        return EXIT_INVALID
    except SentinelError as err:
        # a bad line names the file and the line number; one line, no traceback
        print(f"analyze: {err}", file=sys.stderr)
        return EXIT_INVALID
    explain_out = None
    if args.explain:
        try:
            explain_out = open(args.explain, "w", encoding="utf-8")  # noqa: SIM115  (closed below)
        except OSError as err:
            print(f"--explain {args.explain}: cannot write: {err.strerror}", file=sys.stderr)
            return EXIT_INVALID
    pipeline = Pipeline(rules=rules.ruleset)
    batch = pipeline.process(entries)
    if explain_out is not None:
        # After the whole file: every line names the group (and template) it ended up in.
        with explain_out as fh:
            for entry in entries:
                e = pipeline.explain(entry)
                fh.write(
                    json.dumps({"group": e.group, "template": e.template, "rule": e.rule, "priority": e.priority})
                    + "\n"
                )
    store = MemoryStore()
    now = max((e.ts for e in entries), default=time.time())
    store.record(list(batch.deltas.values()), now=now)
    page = store.list_groups(GroupQuery(sort="priority", page_size=args.top))
    rows = [
        {
            "priority": g.priority.value,
            "count": g.count,
            "rule": g.rule,
            "namespace": g.namespace,
            "workload": g.workload,
            "pods": g.pod_count,
            "template": g.template,
            "group": g.id,
        }
        for g in page.items
    ]
    out = sys.stdout
    if args.format == "json":
        json.dump({"lines": batch.lines, "groups": len(batch.deltas), "top": rows}, out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        columns = list(rows[0]) if rows else ["priority"]
        out.write(csv_text(columns, ([r[c] for c in columns] for r in rows)))
    else:
        out.write(f"{batch.lines} lines -> {len(batch.deltas)} groups\n")
        out.write(f"{'PRI':<4} {'COUNT':>7} {'RULE':<20} {'WORKLOAD':<30} TEMPLATE\n")
        for r in rows:
            wl = f"{r['namespace']}/{r['workload']}" if r["namespace"] else str(r["workload"])
            out.write(
                f"{r['priority']:<4} {r['count']:>7} {str(r['rule'])[:20]:<20} {wl[:30]:<30} {str(r['template'])[:120]}\n"
            )
    return EXIT_OK


# -- entry --------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 500:
        raise argparse.ArgumentTypeError(f"must be between 1 and 500, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kube-sentinel", description="Kubernetes error prioritization and safe auto-remediation."
    )
    p.add_argument("--version", action="version", version=f"kube-sentinel {__version__}")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-json", action="store_true", help="log as JSON lines")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the engine, the console and the API")
    run.add_argument("--config", default="/etc/kube-sentinel/config.yaml")
    run.add_argument("--rules", default=None, help="rules file (default: rules_file from the config)")
    run.add_argument("--listen", default=None, help="HOST:PORT (overrides web.listen)")
    run.add_argument("--once", action="store_true", help="one poll cycle, print a summary, exit")
    run.add_argument("--store", default=None, metavar="PATH", help="TinyDB file (overrides store.type and store.path)")
    run.set_defaults(fn=cmd_run)

    demo = sub.add_parser("demo", help="run on bundled Kubernetes error logs: no cluster, no Loki")
    demo.add_argument("--listen", default=None, help="HOST:PORT (default 127.0.0.1:8080)")
    demo.add_argument("--store", default=None, help="keep the demo's store in this TinyDB file")
    demo.add_argument("--once", action="store_true")
    demo.set_defaults(fn=cmd_demo)

    check = sub.add_parser("check", help="validate config and rules (exit 0 valid, 2 invalid)")
    check.add_argument("--config", required=True)
    check.add_argument("--rules", default=None)
    check.add_argument("--loki", action="store_true", help="also probe Loki (/ready and one small query)")
    check.add_argument("--cluster", action="store_true", help="also check RBAC permissions (SelfSubjectAccessReview)")
    check.set_defaults(fn=cmd_check)

    an = sub.add_parser("analyze", help="offline triage report of a log file")
    an.add_argument("file")
    an.add_argument("--rules", default=None)
    an.add_argument("--format", choices=["table", "csv", "json"], default="table")
    an.add_argument("--top", type=_positive_int, default=30, help="groups to show (1-500)")
    an.add_argument(
        "--explain", default=None, metavar="OUT.jsonl", help="one line per input line: group, template, rule, priority"
    )
    an.add_argument("--namespace", default="", help="namespace label for plain-text lines")
    an.add_argument("--pod", default="", help="pod label for plain-text lines")
    an.set_defaults(fn=cmd_analyze)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, json_format=args.log_json)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
