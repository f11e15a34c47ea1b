"""PostgreSQL store against a real server: restarts, replicas, migrations, secrets and bad input."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sentinel.config import load_config
from sentinel.core.model import ErrorGroup, RemediationRecord, Status
from sentinel.errors import ConfigError, StoreError, redact
from sentinel.store import open_store
from sentinel.store.base import GroupQuery, RecordQuery
from sentinel.store.postgres import SCHEMA_VERSION, PostgresStore
from tests.store.pgserver import PASSWORD, PgCluster
from tests.store.test_stores import NOW, delta


def record(rid: str, group: str = "a", t: float = NOW) -> RemediationRecord:
    return RemediationRecord(
        id=rid, time=t, group_id=group, rule="x", action="none", namespace="shop", kind="Pod", name="p"
    )


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Two replicas on one database: a leader and a follower."""
    leader, follower = PostgresStore(pg_url), PostgresStore(pg_url)
    yield leader, follower
    leader.close()
    follower.close()


def test_survives_restart_with_everything(pg_url: str) -> None:
    s1 = PostgresStore(pg_url)
    s1.record([delta("a", count=7), delta("b", count=2)], now=NOW)
    s1.set_cursor(42)
    s1.put_state("safety", {"actions": [1.0]})
    s1.add_remediation(record("r1"))
    s1.apply_aliases({"tb": "ta2"}, templates={"ta2": "t"}, key_fn=lambda ns, wl, c, tk, level: "folded-" + tk)
    s1.close()
    s2 = PostgresStore(pg_url)
    try:
        g = s2.get_group("a")
        assert g is not None and g.count == 7
        assert s2.get_cursor() == 42 and s2.get_state("safety") == {"actions": [1.0]}
        assert [r.id for r in s2.list_remediations(RecordQuery()).items] == ["r1"]
        assert s2.resolve_id("b") == "folded-ta2" and s2.get_group("b") is not None
        assert sorted(g.id for g in s2.all_groups()) == ["a", "folded-ta2"]
        assert s2.health().notices == []
    finally:
        s2.close()


def test_nothing_reaches_the_database_before_flush(pg_url: str) -> None:
    s1 = PostgresStore(pg_url)
    s1.record([delta("a", count=3)], now=NOW)
    s1.set_cursor(9)
    s2 = PostgresStore(pg_url)  # another process: sees only commits
    try:
        assert s2.all_groups() == [] and s2.get_cursor() is None
        s1.flush()
        assert [(g.id, g.count) for g in s2.all_groups()] == [("a", 3)] and s2.get_cursor() == 9
    finally:
        s1.close()
        s2.close()


def test_a_follower_reads_what_the_leader_committed(pair: tuple[PostgresStore, PostgresStore]) -> None:
    leader, follower = pair
    assert follower.list_groups(GroupQuery()).total == 0
    leader.record([delta("a", count=3, ts=NOW + 5), delta("b")], now=NOW + 5)
    leader.set_cursor(100)
    leader.add_remediation(record("r1"))
    leader.put_state("breakers", {"open": ["x"]})
    leader.flush()
    page = follower.list_groups(GroupQuery(sort="count"))
    assert [(g.id, g.count) for g in page.items] == [("a", 3), ("b", 1)]
    assert follower.stats(now=NOW + 5).total_occurrences == 4
    assert follower.get_cursor() == 100
    assert follower.get_state("breakers") == {"open": ["x"]}
    assert [r.id for r in follower.list_remediations(RecordQuery()).items] == ["r1"]
    leader.apply_retention(now=NOW + 10, max_age=1e9, max_groups=1, max_records=100)
    leader.flush()
    assert [g.id for g in follower.all_groups()] == ["a"]


def test_a_followers_acknowledge_takes_effect_on_the_leader(pair: tuple[PostgresStore, PostgresStore]) -> None:
    leader, follower = pair
    leader.record([delta("a", count=3)], now=NOW)
    leader.flush()

    def ack(g: object) -> None:
        g.status = Status.ACKNOWLEDGED  # type: ignore[attr-defined]
        g.status_by = "bob"  # type: ignore[attr-defined]

    assert follower.update_group("a", ack) is not None
    follower.flush()
    leader.record([delta("a", count=2, ts=NOW + 60)], now=NOW + 60)  # the next poll keeps the acknowledge
    leader.flush()
    for s in (leader, follower):
        g = s.get_group("a")
        assert g is not None and g.count == 5 and g.status == Status.ACKNOWLEDGED and g.status_by == "bob"


def _ack_by(who: str) -> Callable[[ErrorGroup], None]:
    def ack(g: ErrorGroup) -> None:
        g.status = Status.ACKNOWLEDGED
        g.status_by = who
        g.status_reason = "on it"

    return ack


def test_a_followers_acknowledge_between_the_leaders_record_and_flush_is_kept(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    """The race README used to admit: the leader's commit writes its counts, not the status it did not change."""
    leader, follower = pair
    leader.record([delta("a", count=3)], now=NOW)
    leader.flush()
    leader.record([delta("a", count=2, ts=NOW + 30)], now=NOW + 30)  # counted, not committed yet
    assert follower.update_group("a", _ack_by("bob")) is not None
    follower.flush()
    leader.flush()
    for s in (leader, follower):
        g = s.get_group("a")
        assert g is not None
        assert (g.count, g.status, g.status_by, g.status_reason) == (5, Status.ACKNOWLEDGED, "bob", "on it")
    other = PostgresStore(leader._url)  # and what the database holds
    try:
        g = other.get_group("a")
        assert g is not None and (g.count, g.status, g.status_by) == (5, Status.ACKNOWLEDGED, "bob")
        assert other.stats(now=NOW + 30).by_status == {"acknowledged": 1}
    finally:
        other.close()
    assert leader.stats(now=NOW + 30).by_status == {"acknowledged": 1}


def test_a_followers_acknowledge_does_not_undo_counts_the_leader_committed_meanwhile(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    leader, follower = pair
    leader.record([delta("a", count=3)], now=NOW)
    leader.flush()
    assert follower.update_group("a", _ack_by("carol")) is not None
    leader.record([delta("a", count=4, ts=NOW + 30)], now=NOW + 30)  # before the follower commits its acknowledge
    leader.flush()
    follower.flush()
    for s in (leader, follower):
        g = s.get_group("a")
        assert g is not None and (g.count, g.status, g.status_by) == (7, Status.ACKNOWLEDGED, "carol")


def test_unwritten_counts_win_over_an_older_copy_from_another_replica(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    leader, follower = pair
    leader.record([delta("a", count=1)], now=NOW)
    leader.flush()
    leader.record([delta("a", count=4)], now=NOW)  # counted, not yet committed
    follower.update_group("a", lambda g: setattr(g, "status_by", "carol"))
    follower.flush()
    assert (leader.get_group("a") or delta("x")).count == 5  # the follower's row did not replace it
    leader.flush()
    assert (follower.get_group("a") or delta("x")).count == 5


def test_retention_trim_of_the_audit_reaches_followers(pair: tuple[PostgresStore, PostgresStore]) -> None:
    leader, follower = pair
    for i in range(5):
        leader.add_remediation(record(f"r{i}", t=NOW + i))
    leader.flush()
    assert follower.list_remediations(RecordQuery()).total == 5
    leader.apply_retention(now=NOW, max_age=1e9, max_groups=10, max_records=2)
    leader.flush()
    assert [r.id for r in follower.list_remediations(RecordQuery()).items] == ["r4", "r3"]
    with psycopg.connect(leader._url) as conn:
        assert conn.execute("SELECT count(*) FROM sentinel_records").fetchone() == (2,)


def test_migrations_are_versioned_and_applied_once(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_newer_schema_is_refused_with_a_clear_message(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=rf"schema_version {SCHEMA_VERSION + 1} is newer than this version reads"):
        PostgresStore(pg_url)


def test_a_bad_row_is_skipped_with_a_notice_and_kept(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.record([delta("a"), delta("b")], now=NOW)
    s.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("""UPDATE sentinel_groups SET doc = jsonb_set(doc, '{count}', '"many"') WHERE id = 'b'""")
    s = PostgresStore(pg_url)
    try:
        assert [g.id for g in s.all_groups()] == ["a"]
        (notice,) = s.health().notices
        assert "'b'" in notice and "sentinel_groups" in notice and "count" in notice and "\n" not in notice
    finally:
        s.close()
    with psycopg.connect(pg_url) as conn:  # nothing stored is lost
        assert conn.execute("SELECT count(*) FROM sentinel_groups").fetchone() == (2,)


def test_a_dropped_connection_fails_one_write_clearly_and_the_next_carries_it(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    try:
        s.record([delta("a", count=2)], now=NOW)
        s.flush()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        s.record([delta("a", count=3)], now=NOW)  # its change check fails quietly; it counts in memory
        s.set_cursor(7)
        try:
            s.flush()
        except StoreError as err:
            assert str(err).startswith("store (postgresql): cannot write:") and "\n" not in str(err)
            assert s.health().write_errors == 1
            s.flush()  # reconnects and writes what the failed one held
        assert s.health().consecutive_write_errors == 0
        other = PostgresStore(pg_url)
        assert (other.get_group("a") or delta("x")).count == 5 and other.get_cursor() == 7
        other.close()
    finally:
        s.close()


def test_unreachable_database_is_one_clear_line_without_the_password(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = f"postgresql://sentinel:{PASSWORD}@127.0.0.1:1/nowhere"
    config = tmp_path / "config.yaml"
    config.write_text(f"store:\n  type: postgresql\n  url: '{url}'\n  connect_timeout: 2s\n")
    loaded = load_config(config, env={})
    with pytest.raises(StoreError) as err:
        open_store(loaded.config)
    text = str(err.value)
    assert text.startswith("store (postgresql): cannot connect (check store.url):") and "\n" not in text
    assert PASSWORD not in redact(text) and PASSWORD not in repr(loaded.config)


def test_malformed_url_is_one_clear_line() -> None:
    with pytest.raises(StoreError, match=r"^store \(postgresql\): store.url is not a valid PostgreSQL"):
        PostgresStore("host=x port=notaport dbname='unterminated")


def test_postgresql_needs_a_url(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("store:\n  type: postgresql\n")
    with pytest.raises(ConfigError) as err:
        load_config(config, env={})
    assert any(p.startswith("store.url: required when store.type is postgresql") for p in err.value.problems)


def test_password_from_a_file_and_url_from_the_environment(pg_cluster: PgCluster, tmp_path: Path) -> None:
    db = pg_cluster.new_database()
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("store:\n  type: postgresql\n  password_file: pw\n")
    env = {"KUBE_SENTINEL_STORE_URL": pg_cluster.tcp_url(db)}
    loaded = load_config(config, env=env)
    assert PASSWORD not in repr(loaded.config) and PASSWORD not in loaded.config.model_dump_json()
    store = open_store(loaded.config)
    try:
        store.record([delta("a")], now=NOW)
        store.flush()
        assert store.writable() == (True, "postgresql")
        assert redact(f"oops {PASSWORD}") == "oops [redacted]"
    finally:
        store.close()


def test_wrong_password_is_refused_clearly(pg_cluster: PgCluster) -> None:
    db = pg_cluster.new_database()
    with pytest.raises(StoreError, match=r"cannot connect \(check store.url\): .*password authentication failed"):
        PostgresStore(pg_cluster.tcp_url(db), password="wrong-password")


def test_a_large_store_loads_in_the_background_and_loses_nothing(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.record([delta(f"g{i}", count=1 + i % 4) for i in range(12_000)], now=NOW)
    for i in range(30):
        s.add_remediation(record(f"r{i}", group=f"g{i}", t=NOW + i))
    s.set_cursor(11)
    s.close()
    counts = {f"g{i}": 1 + i % 4 for i in range(12_000)}
    bg = PostgresStore(pg_url, background_above=0)
    other = PostgresStore(pg_url)  # commits while the first one loads: taken in after
    other.record([delta("late", count=2)], now=NOW)
    other.flush()
    assert bg.get_cursor() == 11  # the small state is there at once
    bg.record([delta("g7", count=100)], now=NOW + 1)  # waits for the load: on top of the stored count
    bg.flush()
    assert bg.health().loading == ""
    want = {**counts, "g7": counts["g7"] + 100, "late": 2}
    assert {g.id: g.count for g in bg.all_groups()} == want
    assert bg.list_remediations(RecordQuery()).total == 30
    bg.close()
    assert {g.id: g.count for g in other.all_groups()} == want
    other.close()


def test_closing_while_loading_loses_nothing(pg_url: str) -> None:
    s = PostgresStore(pg_url)
    s.record([delta(f"g{i}") for i in range(8000)], now=NOW)
    s.close()
    for _ in range(3):
        PostgresStore(pg_url, background_above=0).close()
    again = PostgresStore(pg_url)
    assert len(again.all_groups()) == 8000 and again.health().notices == []
    again.close()


def test_reads_go_on_from_memory_while_the_database_is_away(pg_cluster: PgCluster) -> None:
    db = pg_cluster.new_database()
    url = pg_cluster.url(db)
    s = PostgresStore(url)
    s.record([delta("a", count=2)], now=NOW)
    s.flush()
    pg_cluster.admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
    pg_cluster.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
    try:
        assert [g.count for g in s.all_groups()] == [2]  # answered from memory, no exception
        assert s.list_groups(GroupQuery()).total == 1
        ok, why = s.writable()
        assert not ok and why.startswith("store (postgresql): database unreachable:") and "\n" not in why
        s.record([delta("a")], now=NOW)
        with pytest.raises(StoreError, match=r"^store \(postgresql\): cannot write: "):
            s.flush()
    finally:
        pg_cluster.admin(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
    s.flush()  # what the failed flush held is written now
    s.close()
    again = PostgresStore(url)
    assert (again.get_group("a") or delta("x")).count == 3
    again.close()
