"""File source: JSONL (Loki push format, or ``{ts, labels, line}``) or plain text.

Used by ``kube-sentinel analyze FILE`` (read once, in file order), by the tests, and by the demo,
which replays a bundled file with live timestamps: the file's time span is laid end to end
starting one span before the source was created, so the console has data at once and new lines
keep arriving while it runs.
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sentinel.core.model import LogEntry
from sentinel.errors import SourceError

PAGE = 5000


def _parse_ts(value: Any, *, where: str) -> int:
    """Nanoseconds from an int/str of ns, float seconds, or an RFC 3339 string."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise SourceError(f"{where}: ts must be a number or a time string, got {_shown(value)}")
    if isinstance(value, int):
        return value if value > 10**14 else value * 10**9
    if isinstance(value, float):
        return int(value * 1e9)
    if isinstance(value, str):
        if value.isdigit():
            return _parse_ts(int(value), where=where)
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
        except (ValueError, OverflowError):
            pass
    raise SourceError(f"{where}: ts must be nanoseconds, seconds or an RFC 3339 time, got {_shown(value)}")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _labels(value: Any, *, where: str) -> Mapping[str, Any]:
    """A stream's labels: an object (or nothing); anything else is refused naming the place."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SourceError(f"{where} must be an object of label names to values, got {type(value).__name__}")
    return value


def read_entries(
    path: str | Path, *, default_labels: Mapping[str, str] | None = None, now: Callable[[], float] = time.time
) -> list[LogEntry]:
    """Every entry in ``path``, in file order. Plain-text lines get ``default_labels`` and ``now``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise SourceError(f"{p}: cannot read: {err.strerror}") from None
    entries: list[LogEntry] = []
    plain_labels = dict(default_labels or {})
    label_cache: dict[str, Mapping[str, str]] = {}
    start_ns = int(now() * 1e9)

    def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
        key = json.dumps(obj, sort_keys=True)
        found = label_cache.get(key)
        if found is None:
            found = {str(k): str(v) for k, v in obj.items()}
            label_cache[key] = found
        return found

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{p}:{n}"
        obj: Any = None
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
        if isinstance(obj, dict) and "streams" in obj:
            streams = obj["streams"]
            if not isinstance(streams, list):
                raise SourceError(f"{where}: streams must be a list, got {type(streams).__name__}")
            for i, s in enumerate(streams):
                if not isinstance(s, dict):
                    raise SourceError(f"{where}: streams[{i}] must be an object, got {type(s).__name__}")
                labels = labels_of(_labels(s.get("stream"), where=f"{where}: streams[{i}].stream"))
                values = s.get("values") or []
                if not isinstance(values, list):
                    raise SourceError(f"{where}: streams[{i}].values must be a list, got {type(values).__name__}")
                for j, value in enumerate(values):
                    if not isinstance(value, list) or len(value) < 2:
                        raise SourceError(
                            f"{where}: streams[{i}].values[{j}] must be [timestamp, line], got {_shown(value)}"
                        )
                    entries.append(LogEntry(_parse_ts(value[0], where=where), labels, str(value[1])))
        elif isinstance(obj, dict) and "line" in obj:
            labels = labels_of(_labels(obj.get("labels"), where=f"{where}: labels"))
            ts = _parse_ts(obj["ts"], where=where) if "ts" in obj else start_ns + n
            entries.append(LogEntry(ts, labels, str(obj["line"])))
        else:
            entries.append(LogEntry(start_ns + n, plain_labels, raw))
    return entries


class FileSource:
    """Replays entries from a file. ``live=True`` shifts and loops them onto the wall clock."""

    def __init__(
        self,
        path: str | Path,
        *,
        live: bool = False,
        clock: Callable[[], float] = time.time,
        default_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.live = live
        self._entries = sorted(read_entries(path, default_labels=default_labels, now=clock), key=lambda e: e.ts_ns)
        if not self._entries:
            raise SourceError(f"{self.path}: no log entries")
        self._t0 = self._entries[0].ts_ns
        self._offsets = [e.ts_ns - self._t0 for e in self._entries]
        self._period = self._offsets[-1] + 1_000_000_000
        self._base = int(clock() * 1e9) - self._period

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> str:
        return f"file {self.path}" + (" (live replay)" if self.live else "")

    def ready(self) -> tuple[bool, str]:
        return True, self.describe()

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[list[LogEntry]]:
        """Pages of entries with ``start_ns <= ts < end_ns``, oldest first."""
        if not self.live:
            lo = bisect.bisect_left(self._entries, start_ns, key=lambda e: e.ts_ns)
            hi = bisect.bisect_left(self._entries, end_ns, key=lambda e: e.ts_ns)
            for i in range(lo, hi, PAGE):
                yield self._entries[i : min(hi, i + PAGE)]
            return
        page: list[LogEntry] = []
        first_loop = max(0, (start_ns - self._base) // self._period)
        last_loop = (end_ns - 1 - self._base) // self._period
        for k in range(first_loop, last_loop + 1):
            shift = self._base + k * self._period
            lo = bisect.bisect_left(self._offsets, start_ns - shift)
            hi = bisect.bisect_left(self._offsets, end_ns - shift)
            for i in range(lo, hi):
                e = self._entries[i]
                page.append(LogEntry(shift + self._offsets[i], e.labels, e.line))
                if len(page) >= PAGE:
                    yield page
                    page = []
        if page:
            yield page

    def all(self) -> list[LogEntry]:
        return list(self._entries)
