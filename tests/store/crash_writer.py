"""A child process for the kill -9 tests: polls and acts against a store until it is killed.

Each round is one poll (one occurrence for a rotating group and one for ``total``, the cursor
set to the round number, one flush) and one action (the safety state and an "in progress" audit
record flushed first, then the "cluster call": a line appended to ``acted.log``, then the record
updated). Run as ``python -m tests.store.crash_writer <store spec> <folder>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sentinel.core.model import GroupDelta, Priority, RemediationRecord, Result
from sentinel.store.base import Store

NOW = 1_800_000_000.0
GROUPS = 40


def open_store(spec: str) -> Store:
    kind, _, where = spec.partition(":")
    if kind == "tinydb":
        from sentinel.store.tinydb import TinyDBStore

        return TinyDBStore(where, shards=16)
    if kind == "postgresql":
        from sentinel.store.postgres import PostgresStore

        return PostgresStore(where)
    raise SystemExit(f"unknown store {spec!r}")


def delta(key: str, i: int) -> GroupDelta:
    ts = NOW + i
    return GroupDelta(
        key=key,
        namespace="shop",
        workload="api",
        container="c",
        template=f"boom {key} " + "x" * 400,
        rule="r",
        priority=Priority.P3,
        count=1,
        first_seen=ts,
        last_seen=ts,
        pods={f"api-{i % 7}": None},
        samples=[f"line {i} " + "y" * 300],
        minute_counts={int(ts // 60): 1},
        template_key="t" + key,
    )


def main(spec: str, folder: str) -> None:
    store = open_store(spec)
    acted = Path(folder) / "acted.log"
    i = store.get_cursor() or 0
    print("ready", i, flush=True)
    while True:
        i += 1
        store.record([delta(f"g{i % GROUPS}", i), delta("total", i)], now=NOW + i)
        store.set_cursor(i)
        store.flush()
        store.put_state("safety", {"actions": i})
        record = RemediationRecord(
            id=f"a{i}",
            time=NOW + i,
            group_id="total",
            rule="r",
            action="restart-pod",
            namespace="shop",
            kind="Pod",
            name="p",
        )
        record.reason = "in progress"
        store.add_remediation(record)
        store.flush()  # on disk before the cluster call
        with open(acted, "a", encoding="utf-8") as fh:
            fh.write(f"{i}\n")
            fh.flush()
            os.fsync(fh.fileno())
        record.reason, record.result = "executed", Result.SUCCESS
        store.update_remediation(record)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
