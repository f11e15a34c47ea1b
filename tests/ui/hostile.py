"""Log lines and labels written to be interpreted as Markdown or HTML, and a store seeded with them
through the demo's own pipeline (its config and rules), for the console and browser tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sentinel.bootstrap import build_runtime
from sentinel.engine.runtime import Runtime
from sentinel.sources.files import FileSource
from sentinel.store.base import Store

DEMO = Path(__file__).resolve().parents[2] / "sentinel" / "demo"
NAMESPACE = "evil-[ns](javascript:alert(1))"
POD = "![pod](http://127.0.0.1:9/pod.png)-7d9c8b6f5-abcde"
CONTAINER = "<img src=http://127.0.0.1:9/c.png>"
LINE = (
    "ERROR [click me](javascript:alert(1)) ![pixel](http://127.0.0.1:9/p.png) "
    "<img src=http://127.0.0.1:9/i.png onerror=alert(1)> :red[red] **bold** $x^2$ <b>b</b>"
)
# What must never become an element in a page (the hrefs and srcs above).
HOSTILE_URLS = ("javascript:alert(1)", "http://127.0.0.1:9/")


def write_lines(path: Path, *, n: int = 6) -> Path:
    """``n`` hostile lines a minute apart (a live replay puts the last at "now", the rest before it)."""
    now = time.time_ns()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            labels = {"namespace": NAMESPACE, "pod": POD, "container": CONTAINER, "app": "<b>app</b>"}
            fh.write(json.dumps({"ts": now - (n - i) * 60_000_000_000, "labels": labels, "line": LINE}) + "\n")
    return path


def seed(path: Path, *, store: Store | None = None) -> Runtime:
    """A demo runtime (its config and rules) that polled the hostile lines once into ``store``."""
    rt = build_runtime(
        DEMO / "config.yaml", DEMO / "rules.yaml", source=FileSource(write_lines(path), live=True), store=store
    )
    result = rt.poll_once()
    assert result.ok and result.groups >= 1, result
    return rt
