"""TinyDB store: the memory store's queries over files laid out so that a write touches only what changed.

One concern (issue 13's size rule): the TinyDB file layout, read at start and written per commit.

Layout, for ``store.path: data/sentinel.json``::

    data/sentinel.json                 the commit file (TinyDB tables ``meta`` and ``state``): schema,
                                       generation, shard manifest, cursor, group aliases and the
                                       small state (safety, settings overrides, rule hits ...)
    data/sentinel.json.d/groups/       groups, sharded by CRC-32 of the group id: s0042.g17.json is
                                       shard 42 as written by commit 17 (TinyDB table ``groups``)
    data/sentinel.json.d/state/        state entries too large to sit in the commit file (the
                                       fingerprinter snapshot), one file each, same naming
    data/sentinel.json.d/audit/        the remediation audit, one append-only JSON Lines segment per
                                       UTC day (a later line for the same record id supersedes an
                                       earlier one); retention drops whole segments

One ``flush`` is one commit, in this order:

1. audit lines are appended to their day's segment and fsynced;
2. every shard with a changed group, and every changed large state entry, is written to a new
   file (temporary name, fsync, rename to its generation's name): old files are not touched;
3. the commit file is replaced atomically (temporary file, fsync, rename, fsync of the folder).
   It names the shard files of this generation and carries the cursor of the same snapshot;
4. the previous generation's files that are no longer named are deleted.

Step 3 is the commit point. A crash before it leaves the previous commit file, which names only
the previous shard files (still intact), so the groups and the cursor are both those of the
previous commit; a crash after it leaves the new ones. The cursor is therefore never ahead of the
groups it counted, nor behind them. Files that no commit names (a crash between 2 and 3) and
``*.tmp`` leftovers are removed at the next start.

At start every record is validated (:mod:`sentinel.store.validate`). A commit file that cannot be
read, or holds a value of the wrong type, is moved aside with the folder beside it, and the store
starts empty; a bad shard or audit segment is moved aside alone. Each such event becomes a notice
in :meth:`TinyDBStore.health`, shown by /ready, /metrics and the console until acknowledged. The
old single-file layout (schema 1) is migrated on start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from tinydb import TinyDB
from tinydb.storages import Storage

from sentinel.core.impact import LifecycleSettings
from sentinel.core.model import ErrorGroup, GroupDelta, RemediationRecord
from sentinel.errors import StoreError, cap
from sentinel.store.base import GroupChange, StoreHealth
from sentinel.store.index import _group_doc
from sentinel.store.loading import LoadingStore
from sentinel.store.memory import give_back_memory
from sentinel.store.validate import (
    BadRecord,
    check_aliases,
    check_cursor,
    check_state,
    group_from_doc,
    record_from_doc,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DEFAULT_SHARDS = 1024
INLINE_STATE_MAX = 64 * 1024  # a state entry larger than this (encoded) gets a file of its own
WRITERS = 8  # shard files written (and fsynced) in parallel: fsync waits on the disk, not the GIL
# A commit writes its changed groups to one delta file (one fsync, whatever the number of shards they
# fall in); once this many delta files are named, each commit that changes groups also folds the
# shards of the oldest ones back into their shard files, COMPACT_SHARDS at a time (x4 past DELTA_HARD).
DELTA_SOFT = 16
DELTA_HARD = 128
COMPACT_SHARDS = 16
# A commit goes straight to the shards (no delta file) when that costs no more now, or when its delta
# would be larger than this: a delta is read at every start and its shards are rewritten by the
# compaction anyway, so a first fill or a migration writes the shards at once. Costs are counted in
# group encodings; one file (temp file, fsync, rename, a writer thread) costs about FILE_COST of them.
DELTA_MAX_GROUPS = 4_096
FILE_COST = 8

LOAD_BATCH = 5_000  # groups taken in at a time while loading (readers get the lock in between)
# `kube-sentinel run`: a store whose groups and audit files are larger than this loads in the background.
BACKGROUND_LOAD_ABOVE = 8 * 2**20

_SHARD_FILE = re.compile(r"^(?:s(\d+)\.g(\d+)|d(\d+))\.json$")
_STATE_FILE = re.compile(r"^x([0-9a-f]{8})\.g(\d+)\.json$")
_SEGMENT_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")


def shard_of(group_id: str, shards: int) -> int:
    return zlib.crc32(group_id.encode("utf-8", "surrogatepass")) % shards


def _day(t: float) -> str:
    try:
        return time.strftime("%Y-%m-%d", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return "1970-01-01"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8: orjson (several times json's speed on a poll's group files), and json
    for what orjson refuses (a lone surrogate in a sample, an integer beyond 64 bits). What they
    write reads back the same, but for NaN and infinities, which orjson writes as null: the
    documents written here hold times, counts and scores, never those."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, separators=(",", ":")).encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one: temp + fsync + rename."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            log.warning("store: cannot remove %s: %s", path, cap(err))


class AtomicJSONStorage(Storage):
    """TinyDB storage over one JSON document, replaced atomically on every write."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("top level is not a JSON object")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, dumps(data))

    def close(self) -> None:
        pass


def _read_tables(path: Path) -> dict[str, dict[str, Any]] | None:
    """The tables of one TinyDB file (None: missing or empty); ValueError when it is not one."""
    db = TinyDB(str(path), storage=AtomicJSONStorage)
    try:
        storage = db.storage
        data = storage.read()
    finally:
        db.close()
    if data is None:
        return None
    for name, table in data.items():
        if not isinstance(table, dict):
            raise BadRecord(f"{path}: table {name!r} must be an object, got {type(table).__name__}")
    return data


def _docs(tables: dict[str, dict[str, Any]], name: str) -> list[Any]:
    return list(tables.get(name, {}).values())


class TinyDBStore(LoadingStore):
    """``store.type: tinydb``: durable across restarts; ``health()`` tells what happened at load."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        shards: int = DEFAULT_SHARDS,
        clock: Callable[[], float] = time.time,
        background_above: int | None = None,
    ) -> None:
        super().__init__()
        # Groups and audit files larger than this (bytes) load in a background thread once the small
        # state is in (see _open_v2); None: always before the constructor returns.
        self._background_above = background_above
        self.path = Path(path)
        self.folder = self.path.with_name(self.path.name + ".d")
        self.clock = clock
        self._shards = max(1, int(shards))
        self._gen = 0
        self._manifest: dict[int, int] = {}  # shard -> generation of its current file
        self._state_files: dict[str, int] = {}  # large state name -> generation of its file
        self._state_blobs: dict[str, str] = {}  # state name -> its JSON text, as last encoded
        # shard -> the ids of its groups: lists (a shard holds ~100), 8 bytes an id where a set costs ~60
        self._members: dict[int, list[str]] = {}
        self._deltas: list[int] = []  # generations of the delta files named, oldest first
        self._overlay: dict[str, int] = {}  # group id -> the delta file holding its newest version
        self._delta_ids: dict[int, set[str]] = {}  # delta generation -> the ids it is newest for
        self._dirty_now: set[str] = set()
        self._flush_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._health = StoreHealth(kind="tinydb", started_at=clock())
        self._open()

    @property
    def startup_warnings(self) -> list[str]:
        return list(self._health.notices)

    # -- start --------------------------------------------------------------------------------

    def _notice(self, msg: str, aside: Path | None = None) -> None:
        log.error("%s", msg)
        self._health.notices.append(msg)
        if aside is not None:
            self._health.moved_aside.append(str(aside))

    def _move_aside(self, what: Path, why: str) -> Path:
        aside = what.with_name(f"{what.name}.corrupt-{int(self.clock())}")
        n = 1
        while aside.exists():
            aside = what.with_name(f"{what.name}.corrupt-{int(self.clock())}-{n}")
            n += 1
        try:
            os.replace(what, aside)
        except OSError as err:
            raise StoreError(
                f"store file {what} cannot be read ({why}) and cannot be moved aside ({cap(err)}): "
                "fix or remove it, or make its folder writable"
            ) from err
        return aside

    def _open(self) -> None:
        if not self.path.parent.is_dir():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(f"store.path {self.path}: cannot create its folder: {cap(err)}") from err
        self._remove_temporaries()
        try:
            tables = _read_tables(self.path)
            if tables is not None and ("groups" in tables or "remediations" in tables or not tables.get("meta")):
                self._open_v1(tables)
                return
            meta = self._check_meta(tables) if tables is not None else None
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # not JSON, or not our shape
            self._start_empty(str(err))
            return
        except OSError as err:
            raise StoreError(f"store file {self.path}: cannot read: {cap(err)}") from err
        if tables is None or meta is None:
            if self.path.exists() or self._has_files():
                # An empty commit file, or shard files that no commit file names: keep them apart.
                self._start_empty("no commit file names the files beside it")
            return
        self._open_v2(tables, meta)

    def _has_files(self) -> bool:
        return self.folder.is_dir() and any(self.folder.rglob("*.json*"))

    def _start_empty(self, why: str) -> None:
        moved: list[Path] = []
        if self.path.exists():
            moved.append(self._move_aside(self.path, cap(why)))
        if self.folder.exists():
            moved.append(self._move_aside(self.folder, cap(why)))
        where = " and ".join(str(p) for p in moved) or "nowhere (nothing to keep)"
        msg = f"store file {self.path} could not be read ({cap(why)}); moved aside to {where}; the store started empty"
        self._notice(msg)
        self._health.moved_aside.extend(str(p) for p in moved)

    def _remove_temporaries(self) -> None:
        removed = 0
        folders = [self.path.parent] + [self.folder / sub for sub in ("groups", "state", "audit")]
        for folder in folders:
            if not folder.is_dir():
                continue
            prefix = self.path.name + "." if folder == self.path.parent else ""
            for p in folder.iterdir():
                if p.name.endswith(".tmp") and p.name.startswith(prefix) and p.is_file():
                    try:
                        p.unlink()
                        removed += 1
                    except OSError as err:
                        log.warning("store: cannot remove stale temporary file %s: %s", p, cap(err))
        if removed:
            log.warning("store: removed %d stale temporary file(s) left by an interrupted write", removed)

    def _check_meta(self, tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
        metas = _docs(tables, "meta")
        where = str(self.path)
        if len(metas) != 1 or not isinstance(metas[0], dict):
            raise BadRecord(f"{where}: table 'meta' must hold one object")
        meta = metas[0]
        schema = meta.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise BadRecord(f"{where}: field 'schema' must be an integer, got {schema!r}")
        if schema > SCHEMA_VERSION:
            raise StoreError(
                f"store file {self.path}: schema {schema} is newer than this version reads ({SCHEMA_VERSION}); "
                "run the newer version or point store.path elsewhere"
            )
        for name in ("generation", "shards"):
            v = meta.get(name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "shards" else 0):
                raise BadRecord(f"{where}: field {name!r} must be a positive integer, got {v!r}")
        for name in ("manifest", "state_files"):
            v = meta.get(name, {})
            if not isinstance(v, dict) or not all(
                isinstance(g, int) and not isinstance(g, bool) and isinstance(k, str) for k, g in v.items()
            ):
                raise BadRecord(f"{where}: field {name!r} must be an object of name -> generation")
        if not all(k.isdigit() for k in meta.get("manifest", {})):
            raise BadRecord(f"{where}: field 'manifest' must name shards by number")
        check_cursor(meta.get("cursor"), where=where)
        check_aliases(meta.get("group_aliases"), where=where)
        return meta

    def _open_v1(self, tables: dict[str, dict[str, Any]]) -> None:
        """The single-file layout of schema 1: validate, load, and rewrite it as schema 2."""
        where = str(self.path)
        try:
            groups = [group_from_doc(d, where=where) for d in _docs(tables, "groups")]
            records = [record_from_doc(d, where=where) for d in _docs(tables, "remediations")]
            state: dict[str, dict[str, Any]] = {}
            for d in _docs(tables, "state"):
                if not isinstance(d, dict) or not isinstance(d.get("name"), str):
                    raise BadRecord(f"{where}: a state entry must be an object with a string 'name'")
                state[d["name"]] = check_state(d["name"], d.get("value"), where=where)
            metas = _docs(tables, "meta")
            meta = metas[0] if metas and isinstance(metas[0], dict) else {}
            cursor = check_cursor(meta.get("cursor"), where=where)
            aliases = check_aliases(meta.get("group_aliases"), where=where)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            self._start_empty(str(err))
            return
        if self.folder.exists():
            # Files of an interrupted migration: no commit file names them; the v1 file is the truth.
            shutil.rmtree(self.folder, ignore_errors=True)
        self._load(groups, records, state, cursor, aliases)
        with self._lock:  # everything is to be written in the new layout
            self._dirty = True
            self._dirty_ids = None
            self._new_records = list(self._records)
            self._dirty_state = set(self._state)
        log.info(
            "store %s: migrating %d groups, %d records from the single-file layout",
            self.path,
            len(groups),
            len(records),
        )
        try:
            self.flush()
        except StoreError as err:
            log.error("store %s: migration not written yet (%s); it is retried at the next write", self.path, err)
            return
        log.info("store %s migrated to schema %d (%d shards)", self.path, SCHEMA_VERSION, self._shards)

    def _open_v2(self, tables: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
        where = str(self.path)
        self._gen = meta["generation"]
        self._shards = meta["shards"]
        cursor = meta.get("cursor")
        aliases = dict(meta.get("group_aliases") or {})
        state: dict[str, dict[str, Any]] = {}
        try:
            for d in _docs(tables, "state"):
                if not isinstance(d, dict) or not isinstance(d.get("name"), str):
                    raise BadRecord(f"{where}: a state entry must be an object with a string 'name'")
                state[d["name"]] = check_state(d["name"], d.get("value"), where=where)
        except BadRecord as err:
            self._start_empty(str(err))
            return
        for name, gen in dict(meta.get("state_files", {})).items():
            f = self._state_path(name, gen)
            try:
                t = _read_tables(f)
                docs = _docs(t or {}, "state")
                if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("name") != name:
                    raise BadRecord(f"{f}: must hold the one state entry {name!r}")
                state[name] = check_state(name, docs[0].get("value"), where=str(f))
                self._state_files[name] = gen
            except FileNotFoundError:
                self._notice(f"store: state {name!r} file {f} is missing; that state starts empty")
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                aside = self._move_aside(f, cap(err))
                self._notice(f"store: {cap(err)}; moved aside to {aside}; state {name!r} starts empty", aside)
            except OSError as err:
                raise StoreError(f"store file {f}: cannot read: {cap(err)}") from err
        self._load([], [], state, cursor, aliases)
        self._state_blobs = {name: json.dumps(v, separators=(",", ":")) for name, v in self._state.items()}
        size = self._files_size(meta)
        if self._background_above is not None and size > self._background_above:
            # The small state (cursor, safety, settings, fingerprinter) is in: the process can start.
            # Writes to groups and the audit, and flush, wait until the rest is in (_wait_loaded).
            self._health.loading = f"loading {size / 2**20:.0f} MiB of groups and audit"
            self._load_in_background(self._load_rest, meta)
        else:
            self._load_rest(meta)
            if self._load_error:
                raise StoreError(self._load_error)

    def _files_size(self, meta: dict[str, Any]) -> int:
        total = 0
        named = [self._shard_path(int(k), g) for k, g in meta.get("manifest", {}).items()]
        named += [self._delta_path(g) for g in meta.get("deltas", []) if isinstance(g, int)]
        audit = self.folder / "audit"
        if audit.is_dir():
            named += list(audit.iterdir())
        for f in named:
            with contextlib.suppress(OSError):
                total += f.stat().st_size
        return total

    def _load_rest(self, meta: dict[str, Any]) -> None:
        """The groups (shards, then the delta files over them) and the audit log, taken in batch by batch."""
        if self._loader is not None:  # in the background: once the process serves
            self._wait_until_serving()
        t0 = time.perf_counter()
        try:
            items = sorted(meta.get("manifest", {}).items(), key=lambda kv: int(kv[0]))
            batch: list[ErrorGroup] = []
            for i, (key, gen) in enumerate(items, 1):
                if self._stop_loading:
                    return
                shard = int(key)
                f = self._shard_path(shard, gen)
                try:
                    t = _read_tables(f)
                    loaded = [group_from_doc(d, where=str(f)) for d in _docs(t or {}, "groups")]
                except FileNotFoundError:
                    self._notice(f"store: shard file {f} is missing; its groups start empty")
                    continue
                except (ValueError, KeyError, TypeError, AttributeError) as err:
                    aside = self._move_aside(f, cap(err))
                    self._notice(
                        f"store: {cap(err)}; moved aside to {aside}; the groups of that shard start empty", aside
                    )
                    continue
                except OSError as err:
                    raise StoreError(f"store file {f}: cannot read: {cap(err)}") from err
                self._manifest[shard] = gen
                batch += loaded
                if len(batch) >= LOAD_BATCH:
                    self._take_in(batch, [], [], {})
                    batch = []
                    self._health.loading = f"loading groups: {i} of {len(items)} shards"
            self._take_in(batch, [], [], {})
            over: dict[str, ErrorGroup] = {}
            gone = self._read_deltas(meta, over)
            self._take_in(over.values(), gone, [], {})
            self._health.loading = "loading the audit log"
            records = self._read_audit()
            records.sort(key=lambda r: r.time)
            with self._lock:
                self._records = records
                self._reindex_records()
                self._recount_records()
                self._members = {}
                for gid in self._groups:
                    self._members.setdefault(shard_of(gid, self._shards), []).append(gid)
            self._remove_unnamed()
            log.info(
                "store %s loaded: %d groups in %d shards, %d remediation records in %.1fs",
                self.path,
                len(self._groups),
                len(self._manifest),
                len(records),
                time.perf_counter() - t0,
            )
        except (StoreError, OSError) as err:
            self._load_error = f"store {self.path}: loading stopped, nothing is written until a restart: {cap(err)}"
            self._notice(self._load_error)
        finally:
            self._health.loading = ""
            self._loaded.set()
            give_back_memory()

    # Writes (and reads of everything) wait for a background load; page reads show what is in so far.

    def record(
        self, deltas: Sequence[GroupDelta], *, now: float, lifecycle: LifecycleSettings | None = None
    ) -> list[GroupChange]:
        self._wait_loaded()
        return super().record(deltas, now=now, lifecycle=lifecycle)

    def update_group(self, group_id: str, fn: Callable[[ErrorGroup], object]) -> ErrorGroup | None:
        self._wait_loaded()
        return super().update_group(group_id, fn)

    def update_groups(self, fn: Callable[[ErrorGroup], bool]) -> list[ErrorGroup]:
        self._wait_loaded()
        return super().update_groups(fn)

    def put_group(self, group: ErrorGroup) -> None:
        self._wait_loaded()
        super().put_group(group)

    def apply_aliases(
        self,
        aliases: Mapping[str, str],
        *,
        templates: Mapping[str, str],
        key_fn: Callable[[str, str, str, str, str], str],
    ) -> int:
        self._wait_loaded()
        return super().apply_aliases(aliases, templates=templates, key_fn=key_fn)

    def add_remediation(self, record: RemediationRecord) -> None:
        self._wait_loaded()
        super().add_remediation(record)

    def update_remediation(self, record: RemediationRecord) -> None:
        self._wait_loaded()
        super().update_remediation(record)

    def apply_retention(self, *, now: float, max_age: float, max_groups: int, max_records: int) -> int:
        self._wait_loaded()
        return super().apply_retention(now=now, max_age=max_age, max_groups=max_groups, max_records=max_records)

    def all_groups(self) -> list[ErrorGroup]:
        self._loaded.wait()
        return super().all_groups()

    def get_group(self, group_id: str) -> ErrorGroup | None:
        g = super().get_group(group_id)
        if g is None and not self._loaded.is_set():  # perhaps not read yet
            self._loaded.wait()
            g = super().get_group(group_id)
        return g

    def _read_deltas(self, meta: dict[str, Any], groups: dict[str, ErrorGroup]) -> set[str]:
        """Apply the delta files the commit names, oldest first, over ``groups``; returns the ids they removed."""
        gone: set[str] = set()
        deltas = meta.get("deltas", [])
        if not isinstance(deltas, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in deltas):
            raise StoreError(f"store file {self.path}: field 'deltas' must be a list of generations")
        for gen in deltas:
            f = self._delta_path(gen)
            try:
                t = _read_tables(f) or {}
                loaded = [group_from_doc(d, where=str(f)) for d in _docs(t, "groups")]
                removed = [d.get("id") if isinstance(d, dict) else None for d in _docs(t, "removed")]
                if not all(isinstance(r, str) for r in removed):
                    raise BadRecord(f"{f}: table 'removed': every entry needs a string 'id'")
            except FileNotFoundError:
                self._notice(f"store: delta file {f} is missing; the changes it held are lost")
                continue
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                aside = self._move_aside(f, cap(err))
                self._notice(f"store: {cap(err)}; moved aside to {aside}; the changes it held are not loaded", aside)
                continue
            except OSError as err:
                raise StoreError(f"store file {f}: cannot read: {cap(err)}") from err
            ids: set[str] = set()
            for g in loaded:
                groups[g.id] = g
                ids.add(g.id)
                gone.discard(g.id)
            for gid in removed:
                groups.pop(str(gid), None)
                ids.add(str(gid))
                gone.add(str(gid))
            for gid in ids:
                old = self._overlay.get(gid)
                if old is not None:
                    self._delta_ids[old].discard(gid)
                self._overlay[gid] = gen
            self._delta_ids[gen] = ids
            self._deltas.append(gen)
        return gone

    def _read_audit(self) -> list[RemediationRecord]:
        folder = self.folder / "audit"
        by_id: dict[str, RemediationRecord] = {}
        if not folder.is_dir():
            return []
        for f in sorted(p for p in folder.iterdir() if _SEGMENT_FILE.match(p.name)):
            try:
                raw = f.read_bytes()
            except OSError as err:
                raise StoreError(f"store file {f}: cannot read: {cap(err)}") from err
            lines = raw.split(b"\n")
            tail = lines.pop()  # b"" when the file ends with a newline; else a line cut by a crash
            found: list[RemediationRecord] = []
            try:
                for n, line in enumerate(lines, 1):
                    if line.strip():
                        found.append(record_from_doc(json.loads(line), where=f"{f}:{n}"))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                aside = self._move_aside(f, cap(err))
                self._notice(f"store: {cap(err)}; moved aside to {aside}; its records are not loaded", aside)
                continue
            if tail:
                log.warning(
                    "store: %s ends in a line cut short by an interrupted write (%d bytes); dropped", f, len(tail)
                )
                try:
                    os.truncate(f, len(raw) - len(tail))
                except OSError as err:
                    log.warning("store: cannot trim %s: %s", f, cap(err))
            for r in found:
                by_id[r.id] = r
        return list(by_id.values())

    def _remove_unnamed(self) -> None:
        """Delete shard and state files no commit names (a crash between writing them and the commit)."""
        named = {self._shard_path(s, g).name for s, g in self._manifest.items()}
        named |= {self._delta_path(g).name for g in self._deltas}
        named |= {self._state_path(n, g).name for n, g in self._state_files.items()}
        for sub, pattern in (("groups", _SHARD_FILE), ("state", _STATE_FILE)):
            folder = self.folder / sub
            if not folder.is_dir():
                continue
            for p in folder.iterdir():
                if pattern.match(p.name) and p.name not in named:
                    try:
                        p.unlink()
                    except OSError as err:
                        log.warning("store: cannot remove %s: %s", p, cap(err))

    # -- paths --------------------------------------------------------------------------------

    def _shard_path(self, shard: int, gen: int) -> Path:
        return self.folder / "groups" / f"s{shard:04d}.g{gen}.json"

    def _delta_path(self, gen: int) -> Path:
        return self.folder / "groups" / f"d{gen}.json"

    def _state_path(self, name: str, gen: int) -> Path:
        return self.folder / "state" / f"x{zlib.crc32(name.encode()):08x}.g{gen}.json"

    # -- writes -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write what changed since the last flush, as one commit (see the module docstring)."""
        self._wait_loaded()
        with self._flush_lock:
            with self._lock:
                if not self._dirty:
                    return
                dirty_ids, new_records = self._dirty_ids, self._new_records
                dirty_state, trimmed = self._dirty_state, self._records_trimmed
                self._dirty = False
                self._dirty_ids, self._new_records, self._dirty_state = set(), [], set()
                self._records_trimmed = False
                try:
                    plan = self._plan(dirty_ids, new_records, dirty_state, trimmed)
                except BaseException:
                    self._restore(dirty_ids, new_records, dirty_state, trimmed)
                    raise
            try:
                self._write(plan)
            except OSError as err:
                with self._lock:
                    self._restore(dirty_ids, new_records, dirty_state, trimmed)
                h = self._health
                h.write_errors += 1
                h.consecutive_write_errors += 1
                h.last_write_error = f"store {self.path}: cannot write: {cap(err)}"
                raise StoreError(h.last_write_error) from err
            self._health.consecutive_write_errors = 0
            self._health.last_write_ok_at = self.clock()

    def _restore(
        self, dirty_ids: set[str] | None, new_records: list[RemediationRecord], dirty_state: set[str], trimmed: bool
    ) -> None:
        """Put back what a failed flush took (under ``_lock``): the next flush writes it again."""
        self._dirty = True
        if dirty_ids is None or self._dirty_ids is None:
            self._dirty_ids = None
        else:
            self._dirty_ids |= dirty_ids
        self._new_records = new_records + self._new_records
        self._dirty_state |= dirty_state
        self._records_trimmed = self._records_trimmed or trimmed

    def _plan(
        self, dirty_ids: set[str] | None, new_records: list[RemediationRecord], dirty_state: set[str], trimmed: bool
    ) -> dict[str, Any]:
        """What to write, taken under ``_lock`` (the encoding of files happens outside it)."""
        n = self._shards
        groups = self._groups
        if dirty_ids is None:
            members: dict[int, list[str]] = {}
            for gid in groups:
                members.setdefault(shard_of(gid, n), []).append(gid)
            compact = set(members) | set(self._manifest)
            self._members = members
            changed: set[str] = set()
        else:
            members = self._members
            for gid in dirty_ids:
                s = shard_of(gid, n)
                ids = members.get(s)
                if gid in groups:
                    if ids is None:
                        members[s] = [gid]
                    elif gid not in ids:
                        ids.append(gid)
                elif ids is not None and gid in ids:
                    ids.remove(gid)
                    if not ids:
                        del members[s]
            changed = dirty_ids
            self._dirty_now = dirty_ids
            compact = self._pick_compaction() if dirty_ids else set()
            if changed and self._straight_to_shards(changed, members, compact):
                compact |= {shard_of(gid, n) for gid in changed}
        shard_docs = {s: [_group_doc(groups[gid]) for gid in members.get(s, ())] for s in compact}
        delta_ids = {gid for gid in changed if shard_of(gid, n) not in compact}
        for name in dirty_state:
            if name in self._state:
                self._state_blobs[name] = json.dumps(self._state[name], separators=(",", ":"))
            else:
                self._state_blobs.pop(name, None)
        live_days: set[str] | None = {_day(r.time) for r in self._records} if trimmed else None
        return {
            "full": dirty_ids is None,
            "shards": shard_docs,
            "delta_ids": delta_ids,
            "delta_docs": [_group_doc(groups[gid]) for gid in delta_ids if gid in groups],
            "delta_removed": [gid for gid in delta_ids if gid not in groups],
            "records": [r.to_dict() for r in new_records],
            "dirty_state": {name: self._state_blobs[name] for name in dirty_state if name in self._state_blobs},
            "blobs": dict(self._state_blobs),
            "cursor": self._cursor,
            "aliases": dict(self._group_aliases),
            "live_days": live_days,
        }

    def _straight_to_shards(self, changed: set[str], members: dict[int, list[str]], compact: set[int]) -> bool:
        """Whether the changed groups go to their shard files rather than a delta (see DELTA_MAX_GROUPS)."""
        if len(changed) > DELTA_MAX_GROUPS:
            return True
        touched = {shard_of(gid, self._shards) for gid in changed} - compact
        if len(touched) > len(changed) // FILE_COST + 1:
            return False  # more files than a delta costs in all: decided without counting members
        cost = sum(FILE_COST + len(members.get(s, ())) for s in touched)
        return cost <= FILE_COST + len(changed)

    def _pick_compaction(self) -> set[int]:
        """The shards to fold back this commit: those of the oldest delta files, once there are many."""
        if len(self._deltas) < DELTA_SOFT:
            return set()
        if len(self._deltas) < DELTA_HARD and len(self._dirty_now) < COMPACT_SHARDS:
            return set()  # a small write (an acknowledge) stays small: a poll's commit folds them back
        budget = COMPACT_SHARDS * (4 if len(self._deltas) >= DELTA_HARD else 1)
        picked: set[int] = set()
        for gen in self._deltas:
            for gid in self._delta_ids.get(gen, ()):
                picked.add(shard_of(gid, self._shards))
                if len(picked) >= budget:
                    return picked
        return picked

    def _write(self, plan: dict[str, Any]) -> None:
        gen = self._gen + 1
        groups_dir, state_dir, audit_dir = self.folder / "groups", self.folder / "state", self.folder / "audit"
        # 1. the audit: append-only, one fsync per segment touched (normally one)
        if plan["records"]:
            audit_dir.mkdir(parents=True, exist_ok=True)
            by_day: dict[str, list[str]] = {}
            for d in plan["records"]:
                by_day.setdefault(_day(d["time"]), []).append(json.dumps(d, separators=(",", ":")))
            for day, lines in by_day.items():
                with open(audit_dir / f"{day}.jsonl", "ab") as fh:
                    fh.write(("\n".join(lines) + "\n").encode())
                    fh.flush()
                    os.fsync(fh.fileno())
        # 2. the changed shards and large state entries, each to a new file of this generation
        manifest = dict(self._manifest)
        state_files = dict(self._state_files)
        files: list[tuple[Path, bytes]] = []
        for s, docs in plan["shards"].items():
            if docs:
                body = {"groups": {str(i): d for i, d in enumerate(docs, 1)}}
                files.append((self._shard_path(s, gen), dumps(body)))
                manifest[s] = gen
            else:
                manifest.pop(s, None)
        # the overlay after this commit: compacted shards leave it, this commit's delta enters it
        n = self._shards
        overlay: dict[str, int] = {} if plan["full"] else dict(self._overlay)
        delta_ids: dict[int, set[str]] = {} if plan["full"] else {g: set(ids) for g, ids in self._delta_ids.items()}
        if plan["shards"] and not plan["full"]:
            compact = set(plan["shards"])
            for gid in [g for g in overlay if shard_of(g, n) in compact]:
                delta_ids[overlay.pop(gid)].discard(gid)
        if plan["delta_ids"]:
            body = {
                "groups": {str(i): d for i, d in enumerate(plan["delta_docs"], 1)},
                "removed": {str(i): {"id": gid} for i, gid in enumerate(plan["delta_removed"], 1)},
            }
            files.append((self._delta_path(gen), dumps(body)))
            for gid in plan["delta_ids"]:
                was = overlay.get(gid)
                if was is not None:
                    delta_ids[was].discard(gid)
                overlay[gid] = gen
            delta_ids[gen] = set(plan["delta_ids"])
        deltas = [g for g in [*self._deltas, gen] if delta_ids.get(g)]
        dead = [g for g in self._deltas if not delta_ids.get(g)]
        for g in dead:
            delta_ids.pop(g, None)
        inline: dict[str, str] = {}
        for name, blob in plan["blobs"].items():
            if len(blob) <= INLINE_STATE_MAX:
                inline[name] = blob
                state_files.pop(name, None)
            elif name in plan["dirty_state"] or name not in state_files:
                text = '{"state":{"1":{"name":' + json.dumps(name) + ',"value":' + blob + "}}}"
                files.append((self._state_path(name, gen), text.encode()))
                state_files[name] = gen
        for name in list(state_files):
            if name not in plan["blobs"]:
                del state_files[name]
        if files:
            groups_dir.mkdir(parents=True, exist_ok=True)
            state_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._write_files(files)
            except BaseException:
                for path, _ in files:
                    path.unlink(missing_ok=True)
                raise
            for folder in {path.parent for path, _ in files}:
                _fsync_dir(folder)
        # 3. the commit
        meta = {
            "schema": SCHEMA_VERSION,
            "generation": gen,
            "shards": self._shards,
            "manifest": {str(s): g for s, g in sorted(manifest.items())},
            "deltas": deltas,
            "state_files": state_files,
            "cursor": plan["cursor"],
            "group_aliases": plan["aliases"],
            "written_at": self.clock(),
        }
        states = ",".join(
            f'"{i}":{{"name":{json.dumps(name)},"value":{blob}}}' for i, (name, blob) in enumerate(inline.items(), 1)
        )
        text = '{"meta":{"1":' + json.dumps(meta, separators=(",", ":")) + '},"state":{' + states + "}}"
        try:
            write_atomic(self.path, text.encode())
        except BaseException:
            for path, _ in files:
                path.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        old = [self._shard_path(s, g) for s, g in self._manifest.items() if manifest.get(s) != g]
        old += [self._state_path(name, g) for name, g in self._state_files.items() if state_files.get(name) != g]
        old += [self._delta_path(g) for g in dead]
        self._gen, self._manifest, self._state_files = gen, manifest, state_files
        self._overlay, self._delta_ids, self._deltas = overlay, delta_ids, deltas
        # 4. what the previous commit named and this one does not (in the background: nothing waits on it)
        if old:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="store-write")
            self._pool.submit(_unlink_all, old)
        if plan["live_days"] is not None:
            self._drop_segments(plan["live_days"])

    def _write_files(self, files: list[tuple[Path, bytes]]) -> None:
        if len(files) <= 2:
            for path, data in files:
                write_atomic(path, data)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="store-write")
        futures = [self._pool.submit(write_atomic, path, data) for path, data in files]
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err

    def _drop_segments(self, live_days: Iterable[str]) -> None:
        days = set(live_days)
        oldest = min(days) if days else None
        folder = self.folder / "audit"
        if not folder.is_dir():
            return
        for p in folder.iterdir():
            m = _SEGMENT_FILE.match(p.name)
            if m and m.group(1) not in days and (oldest is None or m.group(1) < oldest):
                try:
                    p.unlink()
                except OSError as err:
                    log.warning("store: cannot remove audit segment %s: %s", p, cap(err))

    # -- health -------------------------------------------------------------------------------

    def writable(self) -> tuple[bool, str]:
        folder = self.path.parent
        if not folder.is_dir():
            return False, f"{folder} is not a folder that exists"
        if not os.access(folder, os.W_OK):
            return False, f"{folder} is not writable"
        why = self._health.failing_reason(self.clock())
        if why is not None:
            return False, why
        return True, str(self.path)

    def health(self) -> StoreHealth:
        return self._health.snapshot()

    def acknowledge_notices(self, *, by: str = "") -> int:
        n = len(self._health.notices)
        if n:
            log.info("store: %d startup notice(s) acknowledged%s", n, f" by {by}" if by else "")
        self._health.notices = []
        self._health.moved_aside = []
        return n

    def close(self) -> None:
        if self._stop_a_running_load():  # SIGTERM while loading: nothing of the groups changed
            if self._dirty:
                log.warning(
                    "store %s: closed while loading; the small state changed since start is not written", self.path
                )
            return
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
