"""PostgreSQL store: one database shared by every replica; the memory store's queries over it.

One concern (issue 13's size rule): keeping the memory store in step with the shared database.

Tables (created and upgraded by the versioned migrations in ``MIGRATIONS``, recorded in
``schema_version``, applied at start under an advisory lock so two replicas starting together
do not race)::

    sentinel_meta      one row: ``rev`` (bumped by every commit), the poll cursor, group aliases,
                       ``records_epoch`` (bumped when retention trims the audit), ``removed_floor``
    sentinel_groups    one row per group: id, the ``rev`` of the commit that last wrote it, the group
    sentinel_removed   ids of groups removed (retention, folding) and the ``rev`` that removed them
    sentinel_records   the remediation audit: id, time, rev, the record
    sentinel_state     small state by name (safety, settings overrides, breakers, fingerprinter ...)
    sentinel_commands  the command queue: what people asked on a follower, for the leader to run
                       (settings, breaker resets, actions), with its answer; outside ``rev``

**One commit per flush.** ``flush`` writes everything changed since the last one (the poll's
groups and counts, its cursor, audit records, state) in one transaction that first locks the
``sentinel_meta`` row. A crash (or kill -9) before COMMIT leaves nothing of it; after, all of it.
Counts are therefore never stored without their cursor, nor the cursor ahead of its counts.

**Replicas stay current by a cheap change check.** Each process keeps what it read in a
:class:`~sentinel.store.memory.MemoryStore` (the queries, sort orders and totals are the same
code on all three stores). Before every read or write it asks for ``sentinel_meta.rev`` (one
indexed row); when another replica has committed since, it reads only the rows whose ``rev`` is
newer, in one REPEATABLE READ snapshot, so a follower's console shows what the leader wrote and
the leader sees a follower's acknowledge before its next change. What this process changed and
has not committed yet wins over a newer row of the same group: the leader's counts are never
overwritten by a follower's older copy.

**A commit writes only what its process changed.** Per dirty group this process notes which of two
field classes it changed since its last commit: the status (``STATUS_FIELDS``: what a person's
acknowledge, snooze or resolve sets) and the rest (counts, times, samples: what a poll sets). The
upsert replaces, of a row that exists, only those classes; the others stay as the row has them
(another replica's), and the memory store takes them in. So a follower's acknowledge made between
the leader's ``record`` and its flush survives the leader's commit, and the follower's commit of it
does not undo counts the leader committed meanwhile.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import ErrorGroup, GroupDelta, RemediationRecord
from sentinel.errors import StoreError, cap, redact
from sentinel.store.base import (
    COMMAND_KINDS,
    Command,
    CommandKind,
    CommandState,
    GroupChange,
    GroupQuery,
    Page,
    RecordQuery,
    StoreHealth,
    StoreStats,
)
from sentinel.store.index import _clone, _group_doc
from sentinel.store.loading import LoadingStore
from sentinel.store.memory import give_back_memory
from sentinel.store.validate import BadRecord, check_aliases, check_cursor, check_state, group_from_doc, record_from_doc

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Versioned migrations, applied in order at start; each runs once, in its own transaction.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE sentinel_meta (
            id integer PRIMARY KEY CHECK (id = 1),
            rev bigint NOT NULL DEFAULT 0,
            cursor_ns bigint,
            aliases jsonb NOT NULL DEFAULT '{}'::jsonb,
            records_epoch bigint NOT NULL DEFAULT 0,
            removed_floor bigint NOT NULL DEFAULT 0
        );
        INSERT INTO sentinel_meta (id) VALUES (1);
        CREATE TABLE sentinel_groups (id text PRIMARY KEY, rev bigint NOT NULL, doc jsonb NOT NULL);
        CREATE INDEX sentinel_groups_rev ON sentinel_groups (rev);
        CREATE TABLE sentinel_removed (id text PRIMARY KEY, rev bigint NOT NULL);
        CREATE INDEX sentinel_removed_rev ON sentinel_removed (rev);
        CREATE TABLE sentinel_records (
            id text PRIMARY KEY, time double precision NOT NULL, rev bigint NOT NULL, doc jsonb NOT NULL
        );
        CREATE INDEX sentinel_records_rev ON sentinel_records (rev);
        CREATE TABLE sentinel_state (name text PRIMARY KEY, rev bigint NOT NULL, value jsonb NOT NULL);
        CREATE INDEX sentinel_state_rev ON sentinel_state (rev);
        """,
    ),
    (
        2,
        """
        CREATE TABLE sentinel_commands (
            id text PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('settings', 'breaker_reset', 'action')),
            payload jsonb NOT NULL,
            requested_by text NOT NULL,
            via text NOT NULL DEFAULT '',
            requested_at double precision NOT NULL,
            state text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'done', 'refused', 'failed')),
            taken_at double precision,
            result jsonb,
            done_at double precision,
            done_by text NOT NULL DEFAULT ''
        );
        CREATE INDEX sentinel_commands_open ON sentinel_commands (requested_at) WHERE state IN ('pending', 'running');
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x6B5E_0001  # pg_advisory_xact_lock key: one replica migrates at a time
# Tombstones of removed groups are kept for this many commits; a replica further behind reloads all.
TOMBSTONE_COMMITS = 100_000
LOAD_BATCH = 5_000  # groups read and taken in at a time by a background load
# `kube-sentinel run`: more groups than this load in the background (see PostgresStore._open).
BACKGROUND_LOAD_ABOVE = 20_000


def url_password(url: str) -> str:
    """The password written inside a connection URL or key=value string ("" if none, or unparsable)."""
    try:
        return str(conninfo_to_dict(url).get("password") or "")
    except psycopg.Error:
        return ""


def _one_line(err: BaseException) -> str:
    """A foreign error as one capped, redacted line (libpq's messages span lines)."""
    return cap(" ".join(redact(err).split()))


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


# A group's fields in two classes, each written by a commit only when this process changed it:
# the status a person (or the lifecycle) sets, and the rest (counts, times, samples ... what a poll sets).
STATUS_FIELDS = ("status", "status_changed_at", "status_by", "status_reason", "snooze_until", "snooze_until_count")
OWN_STATUS, OWN_REST = 1, 2  # bits of what this process changed in a group since its last commit
_REST_FIELDS = tuple(f.name for f in dataclasses.fields(ErrorGroup) if f.name not in STATUS_FIELDS)
_get_status = attrgetter(*STATUS_FIELDS)
_get_rest = attrgetter(*_REST_FIELDS)
_get_rest_scalars = attrgetter(*(n for n in _REST_FIELDS if n not in ("pods", "samples", "minute_counts")))


def _rest_of(g: ErrorGroup) -> tuple[Any, ...]:
    """The rest fields of ``g``, containers as tuples: equal before and after a change only if none changed."""
    return tuple(
        tuple(v.items()) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v for v in _get_rest(g)
    )


def _owned(before: ErrorGroup | None, after: ErrorGroup) -> int:
    """What changed from ``before`` (None: a new group, all of it) to ``after``, as OWN_* bits."""
    if before is None:
        return OWN_STATUS | OWN_REST
    return (OWN_STATUS if _get_status(before) != _get_status(after) else 0) | (
        OWN_REST if _rest_of(before) != _rest_of(after) else 0
    )


def _merged(mine: ErrorGroup, theirs: ErrorGroup, owned: int) -> ErrorGroup:
    """``mine`` with the field classes this process did not change taken from ``theirs`` (another writer's row)."""
    out = copy.copy(mine if owned & OWN_REST else theirs)
    source = mine if owned & OWN_STATUS else theirs
    for name in STATUS_FIELDS:
        setattr(out, name, getattr(source, name))
    return out


class PostgresStore(LoadingStore):
    """``store.type: postgresql``: shared by replicas, one transaction per flush (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        password: str = "",
        connect_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        background_above: int | None = None,
    ) -> None:
        super().__init__()
        # More groups than this: they (and the audit) load in the background once the small state is
        # in; writes wait for them, reads show what is in so far. None: all before the constructor returns.
        self._background_above = background_above
        self._sync_failing = False
        self._url = url
        self._password = password
        self._connect_timeout = connect_timeout
        self.clock = clock
        self._db_lock = threading.RLock()  # taken before MemoryStore._lock, never after it
        self._flush_lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._rev = 0
        self._epoch = 0
        self._cursor_dirty = False
        self._aliases_dirty = False
        # group id -> OWN_* bits of what this process changed since its last commit (a dirty group not
        # here is written whole); the same for the commit under way, while it runs.
        self._owned: dict[str, int] = {}
        self._committing: dict[str, int] = {}
        self._health = StoreHealth(kind="postgresql", started_at=clock())
        self._connect()
        self._migrate()
        self._open()

    @property
    def startup_warnings(self) -> list[str]:
        return list(self._health.notices)

    # -- connection, schema, load ---------------------------------------------------------------

    def _fail(self, what: str, err: BaseException) -> StoreError:
        return StoreError(f"store (postgresql): {what}: {_one_line(err)}")

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        try:
            conninfo_to_dict(self._url)
        except psycopg.Error as err:
            raise self._fail("store.url is not a valid PostgreSQL connection string", err) from err
        extra: dict[str, Any] = {"connect_timeout": max(1, int(self._connect_timeout)), "autocommit": True}
        if self._password:
            extra["password"] = self._password
        try:
            self._conn = psycopg.connect(self._url, **extra)
        except psycopg.Error as err:
            raise self._fail("cannot connect (check store.url)", err) from err
        return self._conn

    def _migrate(self) -> None:
        conn = self._connect()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
                current = int(row[0]) if row else 0
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"store (postgresql): schema_version {current} is newer than this version reads "
                        f"({SCHEMA_VERSION}); run the newer version or point store.url at another database"
                    )
                for version, statements in MIGRATIONS:
                    if version > current:
                        conn.execute(statements)
                        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                        log.info("store (postgresql): schema migrated to version %d", version)
        except psycopg.Error as err:
            raise self._fail("cannot apply the schema migrations", err) from err

    def _notice(self, msg: str) -> None:
        log.error("%s", msg)
        self._health.notices.append(msg)

    def _rows_of(self, rows: Sequence[tuple[Any, ...]], table: str, read: Callable[..., _T]) -> list[_T]:
        """The valid rows of ``table`` as objects; a bad one is skipped with a notice naming it."""
        out = []
        for key, doc in rows:
            try:
                out.append(read(doc, where=table))
            except BadRecord as err:
                self._notice(f"store (postgresql): row {cap(key, 80)!r} of {table} skipped: {err}")
        return out

    def _groups_of(self, rows: Sequence[tuple[Any, ...]]) -> list[ErrorGroup]:
        return self._rows_of(rows, "sentinel_groups", group_from_doc)

    def _records_of(self, rows: Sequence[tuple[Any, ...]]) -> list[RemediationRecord]:
        return self._rows_of(rows, "sentinel_records", record_from_doc)

    def _state_of(self, rows: Sequence[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
        out = {}
        for name, value in rows:
            try:
                out[name] = check_state(name, value, where="sentinel_state")
            except BadRecord as err:
                self._notice(f"store (postgresql): row {cap(name, 80)!r} of sentinel_state skipped: {err}")
        return out

    def _meta(self, row: tuple[Any, ...] | None) -> tuple[int, int | None, dict[str, str], int, int]:
        if row is None:
            raise StoreError(
                "store (postgresql): table sentinel_meta has no row 1 (restore it or use an empty database)"
            )
        rev, cursor, aliases, epoch, floor = row
        try:
            return (
                int(rev),
                check_cursor(cursor, where="sentinel_meta"),
                check_aliases(aliases, where="sentinel_meta"),
                int(epoch),
                int(floor),
            )
        except BadRecord as err:
            raise StoreError(f"store (postgresql): {err}") from err

    _META = "SELECT rev, cursor_ns, aliases, records_epoch, removed_floor FROM sentinel_meta WHERE id = 1"

    def _reload(self) -> None:
        """Read everything (at start, or when this replica fell further behind than the tombstones reach)."""
        with self._db_lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    rev, cursor, aliases, epoch, _ = self._meta(conn.execute(self._META).fetchone())
                    groups = self._groups_of(conn.execute("SELECT id, doc FROM sentinel_groups").fetchall())
                    records = self._records_of(
                        conn.execute("SELECT id, doc FROM sentinel_records ORDER BY time, id").fetchall()
                    )
                    state = self._state_of(conn.execute("SELECT name, value FROM sentinel_state").fetchall())
            except psycopg.Error as err:
                raise self._fail("cannot read the store", err) from err
            self._load(groups, records, state, cursor, aliases)
            self._rev, self._epoch = rev, epoch
            self._cursor_dirty = self._aliases_dirty = False

    def _open(self) -> None:
        """The small state at once; the groups and the audit now, or in the background when there are many."""
        if self._background_above is None:
            self._reload()
            return
        with self._db_lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    rev, cursor, aliases, epoch, _ = self._meta(conn.execute(self._META).fetchone())
                    state = self._state_of(conn.execute("SELECT name, value FROM sentinel_state").fetchall())
                    row = conn.execute("SELECT count(*) FROM sentinel_groups").fetchone()
            except psycopg.Error as err:
                raise self._fail("cannot read the store", err) from err
            total = int(row[0]) if row else 0
            if total <= self._background_above:
                self._reload()
                return
            self._load([], [], state, cursor, aliases)
            # Rows newer than this are taken in by the first change check after the load (re-applied if seen).
            self._rev, self._epoch = rev, epoch
            self._health.loading = f"loading {total} groups and the audit log"
            self._load_in_background(self._load_rest, total)

    def _load_rest(self, total: int) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            self._wait_until_serving()
            if self._stop_loading:
                return
            extra: dict[str, Any] = {"connect_timeout": max(1, int(self._connect_timeout))}
            if self._password:
                extra["password"] = self._password
            conn = psycopg.connect(self._url, **extra)
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                n = 0
                with conn.cursor(name="sentinel_load") as cur:
                    cur.execute("SELECT id, doc FROM sentinel_groups")
                    while rows := cur.fetchmany(LOAD_BATCH):
                        if self._stop_loading:
                            return
                        self._take_in(self._groups_of(rows), [], [], {})
                        n += len(rows)
                        self._health.loading = f"loading groups: {n} of {total}"
                self._health.loading = "loading the audit log"
                records: list[RemediationRecord] = []
                with conn.cursor(name="sentinel_load_records") as cur:  # in batches: no 50k decoded rows at once
                    cur.execute("SELECT id, doc FROM sentinel_records ORDER BY time, id")
                    while rows := cur.fetchmany(LOAD_BATCH):
                        records += self._records_of(rows)
            with self._lock:
                self._records = records
                self._reindex_records()
                self._recount_records()
            log.info("store (postgresql) loaded: %d groups, %d remediation records", n, len(records))
        except (psycopg.Error, StoreError) as err:
            self._load_error = (
                f"store (postgresql): loading stopped, nothing is written until a restart: {_one_line(err)}"
            )
            self._notice(self._load_error)
        finally:
            if conn is not None:
                conn.close()
            self._health.loading = ""
            self._loaded.set()
            give_back_memory()

    # -- the change check ---------------------------------------------------------------------

    def _sync(self) -> None:
        """Take in what other replicas committed since this one last looked (one cheap query when nothing)."""
        if not self._loaded.is_set():
            return  # loading: rows newer than the load's start are taken in once it is done
        with self._db_lock:
            try:
                conn = self._connect()
                row = conn.execute("SELECT rev FROM sentinel_meta WHERE id = 1").fetchone()
                if self._sync_failing:
                    self._sync_failing = False
                    log.info("store (postgresql): the change check works again")
                if row is not None and int(row[0]) == self._rev:
                    return
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    self._pull(conn, skip=set())
            except (psycopg.Error, StoreError) as err:
                # A read goes on with what this process holds; the failure shows on /ready via writable().
                if not self._sync_failing:  # once per outage, not once per read
                    self._sync_failing = True
                    log.warning("store (postgresql): cannot check for changes: %s", _one_line(err))

    def _pull(self, conn: psycopg.Connection[Any], *, skip: set[str]) -> None:
        """Read the rows newer than ``self._rev`` (inside the caller's transaction) and take them in."""
        rev, cursor, aliases, epoch, floor = self._meta(conn.execute(self._META).fetchone())
        if rev == self._rev:
            return
        since = self._rev
        q = "SELECT id, doc FROM sentinel_groups WHERE rev > %s"
        groups = self._groups_of(conn.execute(q, (since,)).fetchall())
        if since < floor:  # further behind than the tombstones reach: what is gone is what the table lacks
            log.warning("store (postgresql): this replica fell behind the kept tombstones; comparing every id")
            present = {r[0] for r in conn.execute("SELECT id FROM sentinel_groups").fetchall()}
            with self._lock:
                removed = [gid for gid in self._groups if gid not in present]
        else:
            q = "SELECT id FROM sentinel_removed WHERE rev > %s"
            removed = [r[0] for r in conn.execute(q, (since,)).fetchall()]
        if epoch != self._epoch:
            records = self._records_of(
                conn.execute("SELECT id, doc FROM sentinel_records ORDER BY time, id").fetchall()
            )
        else:
            q = "SELECT id, doc FROM sentinel_records WHERE rev > %s ORDER BY time, id"
            records = self._records_of(conn.execute(q, (since,)).fetchall())
        state = self._state_of(
            conn.execute("SELECT name, value FROM sentinel_state WHERE rev > %s", (since,)).fetchall()
        )
        with self._lock:
            dirty = self._dirty_ids
            mine = skip if dirty is None else skip | dirty
            keep_all = dirty is None
            if epoch != self._epoch:
                new_records = {r.id for r in self._new_records}
                self._records = [r for r in records if r.id not in new_records] + list(self._new_records)
                self._records.sort(key=lambda r: r.time)
                self._reindex_records()
                self._recount_records()
                records = []
            unwritten = {x.id for x in self._new_records}
            merged = [] if keep_all else self._merge_theirs([g for g in groups if g.id in mine])
            self._take_in(
                [] if keep_all else [g for g in groups if g.id not in mine] + merged,
                [] if keep_all else [gid for gid in removed if gid not in mine],
                [r for r in records if r.id not in unwritten],
                {k: v for k, v in state.items() if k not in self._dirty_state},
            )
            if not self._cursor_dirty:
                self._cursor = cursor
            if not self._aliases_dirty:
                self._group_aliases = aliases
        self._rev, self._epoch = rev, epoch

    def _merge_theirs(
        self, theirs: Sequence[ErrorGroup], committed: Mapping[str, int] | None = None
    ) -> list[ErrorGroup]:
        """Another writer's rows of groups this process changed too: ours, with the field classes this
        process did not change taken from theirs (under ``_lock``). ``committed``: the modes of the commit
        that wrote them (then only the classes that commit and later changes did not own are taken)."""
        whole = OWN_STATUS | OWN_REST
        dirty = self._dirty_ids
        if dirty is None:
            return []  # everything is written whole next time
        out = []
        for g in theirs:
            current = self._groups.get(g.id)
            if current is None:
                continue
            if committed is not None:
                owned = committed.get(g.id, whole)
            else:
                owned = self._committing.get(g.id, 0 if g.id in dirty else whole)
            if g.id in dirty:
                owned |= self._owned.get(g.id, whole)
            if owned != whole:
                out.append(_merged(current, g, owned))
        return out

    def _own(self, gid: str, bits: int) -> None:
        """Note what this process changed in group ``gid`` (under ``_lock``)."""
        self._owned[gid] = self._owned.get(gid, 0) | bits

    def _own_the_rest(self) -> None:
        """Dirty groups changed by a write that does not say what it changed: written whole (under ``_lock``)."""
        dirty = self._dirty_ids
        if dirty is not None:
            for gid in dirty:
                if gid not in self._owned:
                    self._owned[gid] = OWN_STATUS | OWN_REST

    # -- reads and writes: check for changes first, then the memory store's code ---------------

    def record(
        self, deltas: Sequence[GroupDelta], *, now: float, lifecycle: LifecycleSettings | None = None
    ) -> list[GroupChange]:
        self._wait_loaded()
        self._sync()
        with self._lock:  # a poll changes the rest of a group; its status only when the lifecycle moved it
            groups = self._groups
            before = {d.key: _get_status(g) for d in deltas if (g := groups.get(d.key)) is not None}
            try:
                return super().record(deltas, now=now, lifecycle=lifecycle)
            finally:
                for d in deltas:
                    g = groups.get(d.key)
                    if g is not None:
                        was = before.get(d.key)
                        self._own(
                            d.key, OWN_REST if was is not None and was == _get_status(g) else OWN_STATUS | OWN_REST
                        )

    def update_group(self, group_id: str, fn: Callable[[ErrorGroup], object]) -> ErrorGroup | None:
        self._wait_loaded()
        self._sync()
        seen: dict[str, int] = {}

        def tracked(g: ErrorGroup) -> object:
            before = _clone(g)
            result = fn(g)
            seen[g.id] = _owned(before, g)
            return result

        with self._lock:
            out = super().update_group(group_id, tracked)
            for gid, bits in seen.items():
                if out is not None:
                    self._own(gid, bits)
            return out

    def update_groups(self, fn: Callable[[ErrorGroup], bool]) -> list[ErrorGroup]:
        self._wait_loaded()
        self._sync()
        seen: dict[str, int] = {}

        def tracked(g: ErrorGroup) -> bool:
            status, rest = _get_status(g), _get_rest_scalars(g)
            changed = fn(g)
            bits = (OWN_STATUS if _get_status(g) != status else 0) | (
                OWN_REST if changed or _get_rest_scalars(g) != rest else 0
            )
            if bits:
                seen[g.id] = bits
            return changed

        with self._lock:
            try:
                return super().update_groups(tracked)
            finally:
                for gid, bits in seen.items():
                    self._own(gid, bits)
                self._own_the_rest()

    def filtered_groups(self, query: GroupQuery) -> list[ErrorGroup]:
        self._sync()
        return super().filtered_groups(query)

    def get_group(self, group_id: str) -> ErrorGroup | None:
        self._sync()
        g = super().get_group(group_id)
        if g is None and not self._loaded.is_set():  # perhaps not read yet
            self._loaded.wait()
            g = super().get_group(group_id)
        return g

    def list_groups(self, query: GroupQuery) -> Page[ErrorGroup]:
        self._sync()
        return super().list_groups(query)

    def all_groups(self) -> list[ErrorGroup]:
        self._wait_loaded()
        self._sync()
        return super().all_groups()

    def apply_aliases(
        self,
        aliases: Mapping[str, str],
        *,
        templates: Mapping[str, str],
        key_fn: Callable[[str, str, str, str, str], str],
    ) -> int:
        self._wait_loaded()
        self._sync()
        with self._lock:
            moved = super().apply_aliases(aliases, templates=templates, key_fn=key_fn)
            self._own_the_rest()
        if moved:
            self._aliases_dirty = True
        return moved

    def resolve_id(self, group_id: str) -> str:
        return super().resolve_id(group_id)

    def put_group(self, group: ErrorGroup) -> None:
        self._wait_loaded()
        self._sync()
        with self._lock:
            super().put_group(group)
            self._own(group.id, OWN_STATUS | OWN_REST)

    def stats(self, *, now: float, rate_minutes: int = 60) -> StoreStats:
        self._sync()
        return super().stats(now=now, rate_minutes=rate_minutes)

    def add_remediation(self, record: RemediationRecord) -> None:
        self._wait_loaded()
        self._sync()
        super().add_remediation(record)

    def update_remediation(self, record: RemediationRecord) -> None:
        self._wait_loaded()
        self._sync()
        super().update_remediation(record)

    def list_remediations(self, query: RecordQuery) -> Page[RemediationRecord]:
        self._sync()
        return super().list_remediations(query)

    def get_state(self, name: str) -> dict[str, Any] | None:
        self._sync()
        return super().get_state(name)

    def put_state(self, name: str, value: dict[str, Any]) -> None:
        self._sync()
        super().put_state(name, value)

    def get_cursor(self) -> int | None:
        self._sync()
        return super().get_cursor()

    def set_cursor(self, ts_ns: int) -> None:
        with self._lock:
            super().set_cursor(ts_ns)
            self._cursor_dirty = True

    def apply_retention(self, *, now: float, max_age: float, max_groups: int, max_records: int) -> int:
        self._wait_loaded()
        self._sync()
        with self._lock:
            removed = super().apply_retention(now=now, max_age=max_age, max_groups=max_groups, max_records=max_records)
            self._own_the_rest()
            return removed

    # -- the commit ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what changed since the last flush in one transaction (see the module docstring)."""
        self._wait_loaded()
        with self._flush_lock, self._db_lock:
            with self._lock:
                if not self._dirty:
                    return
                dirty_ids, new_records = self._dirty_ids, self._new_records
                dirty_state, trimmed = self._dirty_state, self._records_trimmed
                cursor_dirty, aliases_dirty = self._cursor_dirty, self._aliases_dirty
                ids = set(self._groups) if dirty_ids is None else dirty_ids
                owned, self._owned = self._owned, {}
                whole = OWN_STATUS | OWN_REST
                modes = {gid: owned.get(gid, whole) for gid in ids if gid in self._groups}
                self._committing = modes
                docs = [(gid, _dumps(_group_doc(self._groups[gid]))) for gid in modes]
                gone = [gid for gid in ids if gid not in self._groups]
                records = {r.id: r for r in new_records}  # the latest version of each
                rows = [(r.id, r.time, _dumps(r.to_dict())) for r in records.values()]
                states = [(n, _dumps(self._state[n])) for n in dirty_state if n in self._state]
                kept = [r.id for r in self._records] if trimmed else None
                cursor, aliases = self._cursor, _dumps(self._group_aliases)
                self._dirty = False
                self._dirty_ids, self._new_records, self._dirty_state = set(), [], set()
                self._records_trimmed = False
                self._cursor_dirty = self._aliases_dirty = False
            try:
                theirs = self._commit(
                    docs, gone, rows, states, kept, cursor if cursor_dirty else None, aliases_dirty, aliases, ids, modes
                )
            except (psycopg.Error, StoreError) as err:
                with self._lock:
                    self._committing = {}
                    for gid, bits in owned.items():
                        self._own(gid, bits)
                    self._dirty = True
                    if dirty_ids is None or self._dirty_ids is None:
                        self._dirty_ids = None
                    else:
                        self._dirty_ids |= dirty_ids
                    self._new_records = new_records + self._new_records
                    self._dirty_state |= dirty_state
                    self._records_trimmed = self._records_trimmed or trimmed
                    self._cursor_dirty = self._cursor_dirty or cursor_dirty
                    self._aliases_dirty = self._aliases_dirty or aliases_dirty
                h = self._health
                h.write_errors += 1
                h.consecutive_write_errors += 1
                h.last_write_error = f"store (postgresql): cannot write: {_one_line(err)}"
                raise StoreError(h.last_write_error) from err
            with self._lock:
                self._committing = {}
                if theirs:  # rows that kept another writer's fields: the memory store shows them too
                    self._take_in(self._merge_theirs(self._groups_of(theirs), modes), [], [], {})
            self._health.consecutive_write_errors = 0
            self._health.last_write_ok_at = self.clock()

    def _commit(
        self,
        docs: list[tuple[str, str]],
        gone: list[str],
        rows: list[tuple[str, float, str]],
        states: list[tuple[str, str]],
        kept: list[str] | None,
        cursor: int | None,
        aliases_dirty: bool,
        aliases: str,
        mine: set[str],
        modes: Mapping[str, int],
    ) -> list[tuple[Any, ...]]:
        """One transaction; returns the (id, doc) rows written with fields of another writer's kept in them."""
        conn = self._connect()
        theirs: list[tuple[Any, ...]] = []
        with conn.transaction():
            row = conn.execute("SELECT rev FROM sentinel_meta WHERE id = 1 FOR UPDATE").fetchone()
            if row is None:
                raise StoreError("store (postgresql): table sentinel_meta has no row 1")
            if int(row[0]) != self._rev:
                self._pull(conn, skip=mine)  # another replica committed: take it in first (ours win per row)
            rev = int(row[0]) + 1
            if docs:
                # One statement: the upsert, and the tombstones of groups that came back. Of a row that
                # exists, only the field classes this process changed (the mode's OWN_* bits) are
                # replaced: a follower's acknowledge is not undone by the leader's counts, nor the
                # leader's counts by the follower's acknowledge. (Commits are serialised by the meta row lock.)
                theirs = conn.execute(
                    "WITH src AS (SELECT t.i, t.d::jsonb AS d, t.m, g.doc AS old "
                    "FROM unnest(%b::text[], %b::text[], %b::int[]) AS t(i, d, m) "
                    "LEFT JOIN sentinel_groups g ON g.id = t.i), "
                    "merged AS (SELECT i, d, CASE WHEN old IS NULL OR m = 3 THEN d "
                    "WHEN m = 2 THEN d || (old - %b::text[]) WHEN m = 1 THEN old || (d - %b::text[]) ELSE old "
                    "END AS doc FROM src), "
                    "up AS (INSERT INTO sentinel_groups (id, rev, doc) SELECT i, %b, doc FROM merged "
                    "ON CONFLICT (id) DO UPDATE SET rev = EXCLUDED.rev, doc = EXCLUDED.doc RETURNING id), "
                    "back AS (DELETE FROM sentinel_removed WHERE id IN (SELECT id FROM up)) "
                    "SELECT i, doc FROM merged WHERE doc <> d",
                    (
                        [d[0] for d in docs],
                        [d[1] for d in docs],
                        [modes.get(d[0], 3) for d in docs],
                        list(_REST_FIELDS),  # old - rest: the status fields of the row as it is
                        list(_REST_FIELDS),
                        rev,
                    ),
                ).fetchall()
            if gone:
                conn.execute("DELETE FROM sentinel_groups WHERE id = ANY(%b)", (gone,))
                conn.execute(
                    "INSERT INTO sentinel_removed (id, rev) SELECT i, %s FROM unnest(%b::text[]) AS t(i) "
                    "ON CONFLICT (id) DO UPDATE SET rev = EXCLUDED.rev",
                    (rev, gone),
                )
            if rows:
                conn.execute(
                    "INSERT INTO sentinel_records (id, time, rev, doc) SELECT i, t, %s, d::jsonb "
                    "FROM unnest(%b::text[], %b::float8[], %b::text[]) AS x(i, t, d) "
                    "ON CONFLICT (id) DO UPDATE SET time = EXCLUDED.time, rev = EXCLUDED.rev, doc = EXCLUDED.doc",
                    (rev, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
                )
            if states:
                conn.execute(
                    "INSERT INTO sentinel_state (name, rev, value) SELECT n, %s, v::jsonb "
                    "FROM unnest(%b::text[], %b::text[]) AS t(n, v) "
                    "ON CONFLICT (name) DO UPDATE SET rev = EXCLUDED.rev, value = EXCLUDED.value",
                    (rev, [s[0] for s in states], [s[1] for s in states]),
                )
            sets = [sql.SQL("rev = %s")]
            params: list[Any] = [rev]
            if kept is not None:
                conn.execute("DELETE FROM sentinel_records WHERE NOT (id = ANY(%b))", (kept,))
                sets.append(sql.SQL("records_epoch = records_epoch + 1"))
            if cursor is not None:
                sets.append(sql.SQL("cursor_ns = %s"))
                params.append(cursor)
            if aliases_dirty:
                sets.append(sql.SQL("aliases = %s::jsonb"))
                params.append(aliases)
            if gone and rev % 1000 == 0:
                floor = rev - TOMBSTONE_COMMITS
                if floor > 0:
                    conn.execute("DELETE FROM sentinel_removed WHERE rev < %s", (floor,))
                    sets.append(sql.SQL("removed_floor = %s"))
                    params.append(floor)
            update = sql.SQL("UPDATE sentinel_meta SET {} WHERE id = 1 RETURNING records_epoch")
            epoch_row = conn.execute(update.format(sql.SQL(", ").join(sets)), params).fetchone()
        self._rev = rev
        if epoch_row is not None:
            self._epoch = int(epoch_row[0])
        return theirs

    # -- health -------------------------------------------------------------------------------

    def writable(self) -> tuple[bool, str]:
        try:
            with self._db_lock:
                self._connect().execute("SELECT 1")
        except (psycopg.Error, StoreError) as err:
            return False, f"store (postgresql): database unreachable: {_one_line(err)}"
        why = self._health.failing_reason(self.clock())
        if why is not None:
            return False, why
        return True, "postgresql"

    def health(self) -> StoreHealth:
        return self._health.snapshot()

    def acknowledge_notices(self, *, by: str = "") -> int:
        n = len(self._health.notices)
        if n:
            log.info("store: %d startup notice(s) acknowledged%s", n, f" by {by}" if by else "")
        self._health.notices = []
        return n

    def close(self) -> None:
        if self._stop_a_running_load():  # SIGTERM while loading: no group changed yet
            if self._dirty:
                log.warning("store (postgresql): closed while loading; small state changed since start not written")
            self._dirty = False
        try:
            self.flush()
        finally:
            with self._db_lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    # -- the command queue (sentinel.store.base.CommandQueue): a follower's changes, the leader runs -

    _COMMAND = (
        "SELECT id, kind, payload, requested_by, via, requested_at, state, taken_at, result, done_at, done_by "
        "FROM sentinel_commands"
    )
    _commands_taken = 0

    def _command_of(self, row: tuple[Any, ...]) -> Command:
        cid, kind, payload, requested_by, via, requested_at, state, taken_at, result, done_at, done_by = row
        return Command(
            id=cid,
            kind=kind,
            payload=payload if isinstance(payload, dict) else {},
            requested_by=requested_by,
            via=via,
            requested_at=float(requested_at),
            state=state,
            taken_at=None if taken_at is None else float(taken_at),
            result=result if isinstance(result, dict) else None,
            done_at=None if done_at is None else float(done_at),
            done_by=done_by,
        )

    def submit_command(
        self, kind: CommandKind, payload: dict[str, Any], *, requested_by: str, via: str, now: float
    ) -> Command:
        """Queue ``kind`` for the leader (committed when this returns)."""
        if kind not in COMMAND_KINDS:
            raise ValueError(f"command kind must be one of {', '.join(COMMAND_KINDS)}, not {kind!r}")
        cmd = Command(
            id=uuid.uuid4().hex, kind=kind, payload=payload, requested_by=requested_by, via=via, requested_at=now
        )
        with self._db_lock:
            try:
                self._connect().execute(
                    "INSERT INTO sentinel_commands (id, kind, payload, requested_by, via, requested_at) "
                    "VALUES (%s, %s, %s::jsonb, %s, %s, %s)",
                    (cmd.id, kind, _dumps(payload), requested_by, via, now),
                )
            except psycopg.Error as err:
                raise self._fail("cannot queue the command for the leader", err) from err
        return cmd

    def take_commands(self, *, by: str, now: float, limit: int = 20, stale_after: float = 120.0) -> list[Command]:
        """The oldest pending commands, marked ``running`` (by ``by``) in a transaction committed before
        this returns, so no other leader takes them again (``FOR UPDATE SKIP LOCKED``). Commands left
        ``running`` longer than ``stale_after`` are finished as ``failed``: never run twice."""
        abandoned = {
            "error": "abandoned",
            "message": (
                "the leader that took this command stopped before it answered; it was not run again "
                "(the audit log says whether it ran)"
            ),
        }
        with self._db_lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    conn.execute(
                        "UPDATE sentinel_commands SET state = 'failed', result = %s::jsonb, done_at = %s "
                        "WHERE state = 'running' AND taken_at < %s",
                        (_dumps(abandoned), now, now - stale_after),
                    )
                    rows = conn.execute(
                        self._COMMAND + " WHERE state = 'pending' ORDER BY requested_at, id LIMIT %s "
                        "FOR UPDATE SKIP LOCKED",
                        (limit,),
                    ).fetchall()
                    if rows:
                        conn.execute(
                            "UPDATE sentinel_commands SET state = 'running', taken_at = %s, done_by = %s "
                            "WHERE id = ANY(%s)",
                            (now, by, [r[0] for r in rows]),
                        )
                    self._commands_taken += 1
                    if self._commands_taken % 600 == 1:  # about every 10 minutes: answers older than a day go
                        conn.execute(
                            "DELETE FROM sentinel_commands WHERE state IN ('done', 'refused', 'failed') "
                            "AND done_at < %s",
                            (now - 86_400,),
                        )
            except psycopg.Error as err:
                raise self._fail("cannot take the queued commands", err) from err
        return [replace(self._command_of(row), state="running", taken_at=now, done_by=by) for row in rows]

    def finish_command(
        self, command_id: str, *, state: CommandState, result: dict[str, Any], by: str, now: float
    ) -> Command | None:
        """The leader's answer to a command it took; None if there is no such command."""
        with self._db_lock:
            try:
                row = (
                    self._connect()
                    .execute(
                        "UPDATE sentinel_commands SET state = %s, result = %s::jsonb, done_at = %s, done_by = %s "
                        "WHERE id = %s RETURNING id, kind, payload, requested_by, via, requested_at, state, taken_at, "
                        "result, done_at, done_by",
                        (state, _dumps(result), now, by, command_id),
                    )
                    .fetchone()
                )
            except psycopg.Error as err:
                raise self._fail("cannot record the command's answer", err) from err
        return None if row is None else self._command_of(row)

    def command(self, command_id: str) -> Command | None:
        with self._db_lock:
            try:
                row = self._connect().execute(self._COMMAND + " WHERE id = %s", (command_id,)).fetchone()
            except psycopg.Error as err:
                raise self._fail("cannot read the command", err) from err
        return None if row is None else self._command_of(row)
