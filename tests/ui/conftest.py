"""Fixtures for the console tests: runtimes (empty, demo, 50,000 groups) installed for AppTest runs."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sentinel import bootstrap
from sentinel.core.model import GroupDelta, Priority
from sentinel.engine.runtime import Runtime, install, uninstall
from sentinel.sources.files import FileSource
from sentinel.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
DEMO = ROOT / "sentinel" / "demo"
PAGES = {
    "overview": "pages/overview.py",
    "errors": "pages/errors.py",
    "rules": "pages/rules.py",
    "history": "pages/history.py",
    "settings": "pages/settings.py",
}
BIG = 50_000


def build_runtime(store: MemoryStore | None = None) -> Runtime:
    """The demo's config and rules with a given store; nothing started."""
    return bootstrap.build_runtime(
        DEMO / "config.yaml",
        DEMO / "rules.yaml",
        source=FileSource(DEMO / "logs.jsonl", live=True),
        store=store or MemoryStore(),
    )


def big_store(n: int = BIG, *, now: float | None = None, seed: int = 7) -> MemoryStore:
    """``n`` distinct groups over 40 namespaces and 800 workloads, with an hour of per-minute counts."""
    now = time.time() if now is None else now
    rnd = random.Random(seed)
    rules = [
        ("crashloop-backoff", Priority.P1, "Back-off restarting failed container {c} in pod {p}"),
        ("oom-killed", Priority.P1, "OOMKilled: container {c} exceeded memory limit <NUM>"),
        ("database-error", Priority.P2, "database error: too many clients already ({c})"),
        ("tls-error", Priority.P2, "x509: certificate has expired for {c}"),
        ("connection-refused", Priority.P3, "dial tcp <IP>:<NUM>: connect: connection refused ({c})"),
        ("timeout", Priority.P3, "context deadline exceeded calling {c}"),
        ("generic-error", Priority.P4, "error handling request {c}"),
        ("default", Priority.P4, "unexpected state {c}"),
    ]
    deltas = []
    for i in range(n):
        ns = f"team-{i % 40:02d}"
        wl = f"svc-{i % 800:03d}"
        rule, prio, tpl = rules[i % len(rules)]
        template = tpl.format(c=f"op{i}", p="<POD>")
        last = now - rnd.uniform(0, 3000)
        first = last - rnd.uniform(0, 7200)
        pod = f"{wl}-7d9c8b6f5-{i % 97:05d}"
        minute = int(last // 60)
        deltas.append(
            GroupDelta(
                key=f"g{i:06d}",
                namespace=ns,
                workload=wl,
                container="app",
                template=template,
                rule=rule,
                priority=prio,
                count=1 + i % 50,
                first_seen=first,
                last_seen=last,
                pods={pod: None},
                samples=[template.replace("<IP>", "10.0.0.1").replace("<NUM>", "42")],
                minute_counts={minute: 1 + i % 50},
            )
        )
    store = MemoryStore()
    store.record(deltas, now=now)
    return store


@pytest.fixture
def empty_rt() -> Iterator[Runtime]:
    rt = build_runtime()
    install(rt)
    yield rt
    uninstall()
    rt.stop()


@pytest.fixture
def demo_rt() -> Iterator[Runtime]:
    """The demo: bundled logs, one poll (groups, dry-run remediations, events)."""
    rt = build_runtime()
    result = rt.poll_once()
    assert result.ok and result.groups > 0
    install(rt)
    yield rt
    uninstall()
    rt.stop()


@pytest.fixture(scope="session")
def _big_store() -> MemoryStore:
    return big_store()


@pytest.fixture
def big_rt(_big_store: MemoryStore) -> Iterator[Runtime]:
    rt = build_runtime(_big_store)
    install(rt)
    yield rt
    uninstall()


def open_page(name: str, params: dict[str, str] | None = None, *, timeout: float = 60) -> AppTest:
    """Run app.py, switch to a page (with query parameters), run it; the AppTest is returned."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if name != "overview":
        at.switch_page(PAGES[name])
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.run()
    return at


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def readable(markdown: str) -> str:
    """Markdown as a reader sees it: a backslash-escaped punctuation character is that character, and
    the invisible word joiner (which keeps a URL in text from becoming a link) is nothing."""
    return _ESCAPED.sub(r"\1", markdown).replace("\u2060", "")


def texts(at: AppTest) -> str:
    """Everything readable on the page, for "does it say ..." assertions."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts.extend(readable(str(e.value)) for e in getattr(at, kind))
    parts.extend(str(e.value) for e in at.code)
    parts.extend(f"{readable(m.label)} {readable(str(m.value))}" for m in at.metric)
    return "\n".join(parts)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first table on the page that has all these columns."""
    for df in at.dataframe:
        value = df.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}; tables: {[list(d.value.columns) for d in at.dataframe]}")
