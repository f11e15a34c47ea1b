"""The command queue of the PostgreSQL store (a follower's changes, for the leader), on a real server."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sentinel.errors import StoreError
from sentinel.store.base import command_queue
from sentinel.store.memory import MemoryStore
from sentinel.store.postgres import MIGRATIONS, PostgresStore
from sentinel.store.tinydb import TinyDBStore
from tests.store.pgserver import PgCluster

NOW = 1_800_000_000.0


def test_only_the_shared_store_offers_a_queue(pg_url: str, tmp_path: Path) -> None:
    assert command_queue(MemoryStore()) is None
    tiny = TinyDBStore(tmp_path / "s.json")
    try:
        assert command_queue(tiny) is None
    finally:
        tiny.close()
    pg = PostgresStore(pg_url)
    try:
        assert command_queue(pg) is pg
    finally:
        pg.close()


def test_submit_take_finish(pg_url: str) -> None:
    follower, leader = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        cmd = follower.submit_command(
            "settings", {"change": {"dry_run": True}}, requested_by="ann", via="pod-b", now=NOW
        )
        seen = leader.command(cmd.id)
        assert seen is not None and (seen.state, seen.kind, seen.via, seen.requested_by) == (
            "pending",
            "settings",
            "pod-b",
            "ann",
        )
        assert seen.payload == {"change": {"dry_run": True}} and not seen.final
        (taken,) = leader.take_commands(by="pod-a", now=NOW + 1)
        assert (taken.id, taken.state, taken.taken_at, taken.done_by) == (cmd.id, "running", NOW + 1, "pod-a")
        assert leader.take_commands(by="pod-a", now=NOW + 2) == []  # taken once
        done = leader.finish_command(
            cmd.id, state="done", result={"changed": {"dry_run": [False, True]}}, by="pod-a", now=NOW + 2
        )
        assert done is not None and done.final
        answer = follower.command(cmd.id)
        assert (
            answer is not None and answer.state == "done" and answer.result == {"changed": {"dry_run": [False, True]}}
        )
        assert follower.command("feedface") is None
        assert leader.finish_command("feedface", state="done", result={}, by="pod-a", now=NOW) is None
    finally:
        follower.close()
        leader.close()


def test_a_command_locked_by_one_leader_is_skipped_by_another(pg_url: str) -> None:
    """FOR UPDATE SKIP LOCKED: a second leader (during a takeover) neither waits nor takes it too."""
    store = PostgresStore(pg_url)
    other = PostgresStore(pg_url)
    try:
        first = store.submit_command("breaker_reset", {"workload": "a/b"}, requested_by="bob", via="b", now=NOW)
        second = store.submit_command("breaker_reset", {"workload": "a/c"}, requested_by="bob", via="b", now=NOW + 1)
        with psycopg.connect(pg_url) as conn, conn.transaction():
            conn.execute("SET lock_timeout = '5s'")
            conn.execute("SELECT id FROM sentinel_commands WHERE id = %s FOR UPDATE", (first.id,))
            taken = other.take_commands(by="pod-c", now=NOW + 2)  # would block (or fail) without SKIP LOCKED
            assert [c.id for c in taken] == [second.id]
        assert [c.id for c in store.take_commands(by="pod-a", now=NOW + 3)] == [first.id]
    finally:
        store.close()
        other.close()


def test_a_command_left_running_is_failed_never_taken_again(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        cmd = store.submit_command("action", {"group_id": "g"}, requested_by="carl", via="b", now=NOW)
        assert len(store.take_commands(by="dead-leader", now=NOW)) == 1  # then it died before answering
        assert store.take_commands(by="new-leader", now=NOW + 60, stale_after=120) == []
        assert (store.command(cmd.id) or cmd).state == "running"
        assert store.take_commands(by="new-leader", now=NOW + 121, stale_after=120) == []
        left = store.command(cmd.id)
        assert left is not None and left.state == "failed" and left.result is not None
        assert left.result["error"] == "abandoned" and "not run again" in left.result["message"]
    finally:
        store.close()


def test_a_bad_kind_is_refused_and_nothing_is_queued(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        with pytest.raises(ValueError, match="command kind must be one of settings, breaker_reset, action"):
            store.submit_command("reboot", {}, requested_by="x", via="b", now=NOW)  # type: ignore[arg-type]
        assert store.take_commands(by="a", now=NOW) == []
    finally:
        store.close()


def test_a_version_1_database_gets_the_queue_at_start(pg_cluster: PgCluster) -> None:
    """Migration 2 adds the queue to a database made by the previous version, whose data stays."""
    url = pg_cluster.url(pg_cluster.new_database())
    version, statements = MIGRATIONS[0]
    assert version == 1
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(statements)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO sentinel_state (name, rev, value) VALUES ('settings', 1, '{\"dry_run\": true}')")
        conn.execute("UPDATE sentinel_meta SET rev = 1")
    store = PostgresStore(url)
    try:
        assert store.get_state("settings") == {"dry_run": True}
        cmd = store.submit_command("settings", {}, requested_by="ann", via="b", now=NOW)
        assert store.command(cmd.id) is not None
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [1, 2]
    finally:
        store.close()


def test_a_database_error_is_a_store_error_saying_what_failed(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url(pg_cluster.new_database())
    store = PostgresStore(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE sentinel_commands")
        with pytest.raises(StoreError, match=r"^store \(postgresql\): cannot queue the command for the leader: "):
            store.submit_command("settings", {}, requested_by="ann", via="b", now=NOW)
        with pytest.raises(StoreError, match=r"cannot take the queued commands"):
            store.take_commands(by="a", now=NOW)
    finally:
        store.close()
