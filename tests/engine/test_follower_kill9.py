"""kill -9 of the leader while it runs a follower's action: the action reached the cluster once, and
no later leader runs it again (taken is committed before acting). Real PostgreSQL, Lease, Kubernetes peer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentinel.engine.relay import STALE_AFTER, Queued
from sentinel.store.base import RecordQuery, command_queue
from tests.engine.test_follower import build, shared_config, time_passes, web_group
from tests.engine.test_leader import NS, FakeClock
from tests.peers.kube import KubePeer
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[2]


def evictions(peer: KubePeer) -> int:
    return sum(1 for r in peer.seen("POST", "/eviction") if r.status == 201)


@pytest.mark.timeout(180)
def test_a_leader_killed_mid_action_never_has_it_run_twice(
    tmp_path: Path, kube_peer: KubePeer, loki_peer: LokiPeer, pg_url: str
) -> None:
    kube_peer.add_namespace(NS)
    kube_peer.deployment("web")
    setup_clock = FakeClock(time.time())
    setup = build(shared_config(tmp_path, kube_peer, loki_peer, "setup", pg_url), loki_peer, setup_clock)
    assert setup.lease_tick()
    gid = web_group(setup, kube_peer, loki_peer, setup_clock)
    setup.stop()  # releases the Lease: the child takes it at once

    cfg = shared_config(tmp_path, kube_peer, loki_peer, "a", pg_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.leader_child", str(cfg)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    b = c = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), (line, proc.stderr.read() if proc.stderr else "")
        # the eviction reaches the API server, and the leader dies before it hears the answer
        kube_peer.before("POST", "/eviction", lambda _peer: os.kill(proc.pid, signal.SIGKILL))

        b = build(shared_config(tmp_path, kube_peer, loki_peer, "b", pg_url), loki_peer, time.time)
        assert not b.lease_tick() and b.leadership()["holder"] == "a"
        assert b.commands.relay is not None
        b.commands.relay.wait = 0.0
        with pytest.raises(Queued) as queued:
            b.request_action(gid, action="restart-pod", by="carl")
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert evictions(kube_peer) == 1
        queue = command_queue(b.store)
        assert queue is not None
        cmd = queue.command(queued.value.command.id)
        assert cmd is not None and (cmd.state, cmd.done_by) == ("running", "a")

        clock = FakeClock(time.time())
        c = build(shared_config(tmp_path, kube_peer, loki_peer, "c", pg_url), loki_peer, clock)
        clock.advance(16)  # past the dead leader's lease_duration (15s)
        assert c.lease_tick(), c.leadership()
        assert c.run_commands() == 0  # taken, so never taken again
        time_passes(c, clock, STALE_AFTER + 1)
        assert c.run_commands() == 0
        cmd = queue.command(cmd.id)
        assert cmd is not None and cmd.state == "failed" and cmd.result is not None
        assert cmd.result["error"] == "abandoned"
        assert evictions(kube_peer) == 1  # once, whatever happened to the leader
        (record,) = c.store.list_remediations(RecordQuery(action="restart-pod")).items
        assert record.requested_by == "carl via b" and record.reason == "in progress"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for fh in (proc.stdout, proc.stderr):
            if fh is not None:
                fh.close()
        for rt in (b, c):
            if rt is not None:
                rt.stop()
