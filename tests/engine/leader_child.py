"""A child process for the kill -9 test of the command queue: a leader that runs what followers queue.

``python -m tests.engine.leader_child <config.yaml>`` takes the Lease, prints ``ready``, then runs
the command job every 20 ms (and a lease round every second) until it is killed.
"""

from __future__ import annotations

import sys
import time

from sentinel.bootstrap import build_runtime


def main(config: str) -> None:
    rt = build_runtime(config, env={})
    deadline = time.monotonic() + 60
    while not rt.lease_tick():
        if time.monotonic() > deadline:
            raise SystemExit("never became the leader")
        time.sleep(0.2)
    print("ready", flush=True)
    last_round = time.monotonic()
    while True:
        rt.run_commands()
        if time.monotonic() - last_round >= 1.0:
            rt.lease_tick()
            last_round = time.monotonic()
        time.sleep(0.02)


if __name__ == "__main__":
    main(sys.argv[1])
