"""TinyDB store: the memory store's queries over a TinyDB file written atomically.

Reads are served from memory (the TinyDB file is loaded once at start); ``flush`` writes the whole
database through TinyDB's storage as one JSON document to a temporary file, fsyncs it and renames
it over the old one, so a crash leaves either the old or the new file, never half of one. A file
that cannot be read at start is moved aside (``<name>.corrupt-<time>``) and reported.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from sentinel.core.model import ErrorGroup, RemediationRecord
from sentinel.errors import StoreError, cap
from sentinel.store.memory import MemoryStore

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces the file atomically on every write (temp file + fsync + rename)."""

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
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            text = json.dumps(data, separators=(",", ":"))  # the C encoder; json.dump streams in Python
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        pass


class TinyDBStore(MemoryStore):
    """``store.type: tinydb``: durable across restarts; ``startup_warnings`` tells what happened at load."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.startup_warnings: list[str] = []
        self._flush_lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"store.path {self.path}: cannot create its folder: {cap(err)}") from err
        try:
            db = TinyDB(str(self.path), storage=AtomicJSONStorage)
            groups = [ErrorGroup.from_dict(d) for d in db.table("groups").all()]
            records = [RemediationRecord.from_dict(d) for d in db.table("remediations").all()]
            state = {str(d["name"]): d["value"] for d in db.table("state").all()}
            meta = db.table("meta").all()
            cursor = meta[0].get("cursor") if meta else None
            group_aliases = meta[0].get("group_aliases", {}) if meta else {}
            db.close()
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # not JSON, or not our shape
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            msg = f"store file {self.path} could not be read ({cap(err)}); moved aside to {aside} and started empty"
            log.error("%s", msg)
            self.startup_warnings.append(msg)
            return
        except OSError as err:
            raise StoreError(f"store file {self.path}: cannot read: {cap(err)}") from err
        self._load(groups, records, state, cursor, group_aliases)
        log.info("store %s loaded: %d groups, %d remediation records", self.path, len(groups), len(records))

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                if not self._dirty:
                    return
                snap = self._snapshot()
                self._dirty = False
            data = {
                "groups": {str(i): g for i, g in enumerate(snap["groups"], 1)},
                "remediations": {str(i): r for i, r in enumerate(snap["remediations"], 1)},
                "state": {str(i): {"name": k, "value": v} for i, (k, v) in enumerate(snap["state"].items(), 1)},
                "meta": {
                    "1": {
                        "cursor": snap["cursor"],
                        "group_aliases": snap["group_aliases"],
                        "schema": SCHEMA_VERSION,
                        "written_at": time.time(),
                    }
                },
            }
            try:
                AtomicJSONStorage(str(self.path)).write(data)
            except OSError as err:
                with self._lock:
                    self._dirty = True
                raise StoreError(f"store file {self.path}: cannot write: {cap(err)}") from err

    def writable(self) -> tuple[bool, str]:
        folder = self.path.parent
        if not folder.is_dir():
            return False, f"{folder} is not a folder that exists"
        if not os.access(folder, os.W_OK):
            return False, f"{folder} is not writable"
        return True, str(self.path)

    def close(self) -> None:
        self.flush()
