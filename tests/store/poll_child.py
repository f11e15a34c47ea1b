"""A child process for the kill -9 test against the Loki peer: the real runtime polling in a loop.

``python -m tests.store.poll_child <config.yaml> loop``  polls until killed;
``python -m tests.store.poll_child <config.yaml> until <ns>`` polls until the cursor reaches ``ns``, then exits.
"""

from __future__ import annotations

import sys
import time

from sentinel.bootstrap import build_runtime


def main(config: str, mode: str, until: int = 0) -> None:
    rt = build_runtime(config)
    print("ready", rt.store.get_cursor(), flush=True)
    while True:
        result = rt.poll_once()
        if mode == "until" and result.ok and (rt.store.get_cursor() or 0) >= until:
            rt.stop()
            return
        time.sleep(0.02)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
