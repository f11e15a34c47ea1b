"""kill -9 of the real runtime while it polls a Loki peer: after restarts, every line Loki holds is counted once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sentinel.store.postgres import PostgresStore
from sentinel.store.tinydb import TinyDBStore
from tests.engine.test_runtime import write_config
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000
ROUNDS = 5
PODS = [f"api-7d4b9c8f6d-{s}" for s in ("xk2l9", "pq7zt", "hh5wd")]


def child(cfg: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.poll_child", str(cfg), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("ready"), (line, proc.stderr.read() if proc.stderr else "")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["tinydb", "postgresql"])
def test_kill_9_of_a_polling_runtime_counts_every_loki_line_once(
    kind: str, tmp_path: Path, loki_peer: LokiPeer, request: pytest.FixtureRequest
) -> None:
    if kind == "postgresql":
        url = request.getfixturevalue("pg_url")
        store_yaml = f"store:\n  type: postgresql\n  url: '{url}'\n"
    else:
        store_yaml = f"store:\n  type: tinydb\n  path: {tmp_path / 'kill.json'}\n  shards: 16\n"
    cfg = write_config(tmp_path, loki_peer, ingest_delay="1s")
    text = cfg.read_text()
    cfg.write_text(text[: text.index("store:")] + store_yaml)
    added = [0]
    last_ns = [0]
    stop = threading.Event()
    rnd = random.Random(7)

    def feed() -> None:  # new lines every few milliseconds, stamped now: each poll has some to count
        i = 0
        while not stop.is_set():
            ts = time.time_ns()
            batch = [(ts + k, f"ERROR order {i + k} failed: connection refused") for k in range(5)]
            loki_peer.add_lines({"namespace": "shop", "pod": PODS[i % 3], "container": "api"}, batch)
            added[0] += len(batch)
            last_ns[0] = ts + 4
            i += 5
            time.sleep(0.005)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        for _ in range(ROUNDS):
            proc = child(cfg, "loop")
            try:
                wait_ready(proc)
                time.sleep(rnd.uniform(0.3, 1.5))
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                os.kill(proc.pid, signal.SIGKILL)
            finally:
                proc.wait(timeout=30)
                for fh in (proc.stdout, proc.stderr):
                    if fh is not None:
                        fh.close()
    finally:
        stop.set()
        feeder.join(timeout=10)
    # one clean run reads up to the last line fed, then stops
    proc = child(cfg, "until", str(last_ns[0]))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    store = PostgresStore(url) if kind == "postgresql" else TinyDBStore(tmp_path / "kill.json", shards=16)
    try:
        counted = sum(g.count for g in store.all_groups())
        assert counted == added[0] > 0, f"Loki holds {added[0]} lines, the store counted {counted}"
    finally:
        store.close()
