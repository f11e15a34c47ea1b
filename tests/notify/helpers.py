"""A real Runtime over a few log lines written by the test, with a ``notifications:`` section."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sentinel.bootstrap import build_runtime
from sentinel.engine.runtime import Runtime
from sentinel.sources.files import FileSource
from sentinel.store.memory import MemoryStore

NS = 1_000_000_000

RULES = """\
rules:
  - name: oom
    match: {pattern: "OOMKilled"}
    priority: P1
    remediation: {action: none}
  - name: refused
    match: {pattern: "connection refused"}
    priority: P3
    remediation: {action: none}
"""

CONFIG = """\
loki:
  lookback: 10m
  ingest_delay: 0s
kubernetes:
  in_cluster: false
  kubeconfig: {tmp}/no-kubeconfig
remediation:
  dry_run: true
web:
  external_url: https://sentinel.example.com/
rules_file: rules.yaml
store:
  type: memory
notifications:
{notifications}
"""


def line(ns: str, pod: str, text: str, *, ago: float = 60.0) -> dict[str, object]:
    container = pod.rsplit("-", 2)[0]
    return {
        "ago": ago,  # seconds before the runtime is built (build() stamps ts then)
        "labels": {"namespace": ns, "pod": pod, "container": container},
        "line": text,
    }


OOM = [
    line("shop", "cart-7d9f8b6c5d-x2bcd", "container cart OOMKilled: memory limit 256Mi reached pid=101", ago=90),
    line("shop", "cart-7d9f8b6c5d-x2bcd", "container cart OOMKilled: memory limit 256Mi reached pid=202", ago=60),
    line("shop", "cart-7d9f8b6c5d-v4dfg", "container cart OOMKilled: memory limit 256Mi reached pid=303", ago=30),
]
REFUSED = [line("shop", "api-5c6d7f8f9b-q2w4z", "dial tcp 10.0.0.7:5432: connection refused", ago=40)]
OTHER_NS = [line("data", "etl-6f7b8b9c2d-z9x8w", "worker OOMKilled: memory limit 1Gi reached", ago=50)]


def build(
    tmp: Path, notifications: str, lines: list[dict[str, object]], *, env: dict[str, str] | None = None
) -> Runtime:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules.yaml").write_text(RULES, encoding="utf-8")
    cfg = tmp / "config.yaml"
    cfg.write_text(CONFIG.format(tmp=tmp, notifications=notifications), encoding="utf-8")
    logs = tmp / "logs.jsonl"
    now = time.time()
    stamped = [{"ts": int((now - float(str(x["ago"]))) * NS), "labels": x["labels"], "line": x["line"]} for x in lines]
    logs.write_text("".join(json.dumps(x) + "\n" for x in stamped), encoding="utf-8")
    return build_runtime(cfg, source=FileSource(logs), store=MemoryStore(), env=env or {})


def destination(name: str, kind: str, url: str, extra: str = "") -> str:
    text = f"  destinations:\n    - name: {name}\n      type: {kind}\n      url: {url}\n      backoff: 10ms\n"
    for part in filter(None, extra.split("\n")):
        text += f"      {part}\n"
    return text
