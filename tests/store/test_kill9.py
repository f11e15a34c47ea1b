"""A kill -9 in the middle of a poll's write or an action's loses and double-counts nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentinel.store.base import RecordQuery, Store
from tests.store.crash_writer import open_store

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8


def run_and_kill(spec: str, folder: Path, rnd: random.Random) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", spec, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("ready"), (line, child.stderr.read() if child.stderr else "")
        time.sleep(rnd.uniform(0.05, 0.5))
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
        if child.stderr:
            child.stderr.close()


def check(store: Store, folder: Path) -> int:
    cursor = store.get_cursor() or 0
    groups = {g.id: g.count for g in store.all_groups()}
    # one occurrence of ``total`` and one of a rotating group per poll, up to the cursor: no more, no less
    assert groups.get("total", 0) == cursor
    assert sum(n for gid, n in groups.items() if gid != "total") == cursor
    acted_log = folder / "acted.log"
    acted = [int(x) for x in acted_log.read_text().split()] if acted_log.exists() else []
    assert len(acted) == len(set(acted)), "an action was repeated after a restart"
    if acted:
        safety = store.get_state("safety")
        assert safety is not None and safety["actions"] >= max(acted), "an action happened that the budget forgot"
        ids: set[str] = set()
        page = 1
        while True:
            got = store.list_remediations(RecordQuery(page=page, page_size=500))
            ids |= {r.id for r in got.items}
            if page >= got.pages:
                break
            page += 1
        assert {f"a{i}" for i in acted} <= ids, "an action left no audit record"
    return cursor


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["tinydb", "postgresql"])
def test_kill_9_mid_poll_and_mid_action_loses_and_double_counts_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spec = f"tinydb:{tmp_path / 'db.json'}" if kind == "tinydb" else f"postgresql:{request.getfixturevalue('pg_url')}"
    rnd = random.Random(11)
    progress = []
    for _ in range(ROUNDS):
        run_and_kill(spec, tmp_path, rnd)
        store = open_store(spec)
        try:
            assert store.health().notices == []
            progress.append(check(store, tmp_path))
        finally:
            if hasattr(store, "_pool") and store._pool is not None:  # never flushed: nothing to write
                store._pool.shutdown()
            if kind == "postgresql":
                store.close()  # nothing changed since it opened: closes the connection, writes nothing
    assert progress[-1] > progress[0] > 0  # the child did make progress between the kills
