"""A Loki-compatible test peer served for real on 127.0.0.1.

It answers in Grafana Loki 3.8's exact shapes (compared with recorded responses in
``tests/peers/test_loki_peer.py``): push (JSON), ``query_range`` and ``query`` over a LogQL subset
(stream selector with ``= != =~ !~``, chained line filters ``|= != |~ !~``), ``/ready``, labels, label
values, series and buildinfo; metric queries ``[sum [by (labels)]] (count_over_time(<log query> [range]))``
as instant (``query``) and range (``query_range`` with ``step``) queries. What has no recording is listed in
``tests/peers/README.md``. Like Loki it adds ``service_name`` at push and ``detected_level`` as
structured metadata, which splits one pod's lines over several streams in query answers.

Faults are injected per test: a status (with ``Retry-After``), a delay, a malformed body or a connection
reset for the next N requests. :meth:`LokiPeer.add_lines` loads many lines straight into memory.

Register the fixture in ``tests/conftest.py`` with ``from tests.peers.loki import loki_peer  # noqa: F401``.
"""

from __future__ import annotations

import base64
import bisect
import collections
import heapq
import http.server
import itertools
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

QUERY_RANGE = "/loki/api/v1/query_range"
QUERY = "/loki/api/v1/query"
PUSH = "/loki/api/v1/push"
READY = "/ready"
LABELS = "/loki/api/v1/labels"
SERIES = "/loki/api/v1/series"
BUILDINFO = "/loki/api/v1/status/buildinfo"

TEXT = "text/plain; charset=utf-8"
JSON_QUERY = "application/json; charset=UTF-8"
NS = 1_000_000_000
HOUR_NS = 3600 * NS

MAX_ENTRIES = 5000
DEFAULT_LIMIT = 100
MAX_QUERY_LENGTH_NS = 721 * HOUR_NS
MAX_QUERY_LENGTH_TEXT = "30d1h"
REJECT_OLD_NS = 168 * HOUR_NS
CREATION_GRACE_NS = 600 * NS

READY_STARTUP_MESSAGES = (
    "Some services are not Running:\nStarting: 5\nRunning: 14\n\n",
    "Ingester not ready: waiting for 15s after being ready\n",
    "Pattern Ingester not ready: waiting for 15s after being ready\n",
)
EMPTY_MATCHERS = (
    "parse error : queries require at least one regexp or equality matcher that does not have an "
    'empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will'
)
BUILDINFO_BODY = {
    "version": "3.8.0-main-65e30f8",
    "revision": "65e30f8",
    "branch": "main",
    "buildUser": "",
    "buildDate": "",
    "goVersion": "go1.27.3",
}
SERVICE_NAME_SOURCES = (
    "service", "app", "application", "app_name", "name", "app_kubernetes_io_name", "container",
    "container_name", "k8s_container_name", "component", "workload", "job", "k8s_job_name",
)  # fmt: skip
LEVEL_FIELDS = (
    "level", "LEVEL", "Level", "log.level", "severity", "SEVERITY", "Severity", "SeverityText", "lvl",
    "LVL", "Lvl", "severity_text", "Severity_Text", "SEVERITY_TEXT",
)  # fmt: skip


# --- LogQL subset -----------------------------------------------------------------------------------


class QueryError(Exception):
    """A 400 from the peer: ``str(err)`` is the exact plain-text body."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.regex is not None
        hit = self.regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class LineFilter:
    op: str
    value: str
    regex: re.Pattern[str] | None = None

    def keep(self, line: str) -> bool:
        if self.op == "|=":
            return self.value in line
        if self.op == "!=":
            return self.value not in line
        assert self.regex is not None
        hit = self.regex.search(line) is not None
        return hit if self.op == "|~" else not hit


@dataclass(frozen=True)
class LogQuery:
    matchers: tuple[Matcher, ...]
    filters: tuple[LineFilter, ...]

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    def keep(self, line: str) -> bool:
        return all(f.keep(line) for f in self.filters)


_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<op>=~|!=|!~|\|=|\|~|==|=|\|)"""
    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)|(?P<num>[0-9][0-9.a-z]*)|(?P<punct>[{}(),\[\]])"""
)
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
               '"': '"', "'": "'"}  # fmt: skip


@dataclass(frozen=True)
class _Tok:
    kind: str  # STRING IDENTIFIER NUMBER OP PUNCT $end
    text: str
    col: int

    @property
    def shown(self) -> str:
        return self.kind if self.kind in ("STRING", "IDENTIFIER", "NUMBER", "$end") else self.text


def _go_unquote(raw: str) -> str:
    if raw.startswith("`"):
        return raw[1:-1]
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _GO_ESCAPES:
            out.append(_GO_ESCAPES[nxt])
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        elif nxt in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise QueryError(f"parse error at line 1, col {pos + 1}: syntax error: unexpected {text[pos]!s}")
        kind = m.lastgroup
        if kind != "ws":
            name = {"str": "STRING", "ident": "IDENTIFIER", "num": "NUMBER", "op": "OP", "punct": "PUNCT"}
            toks.append(_Tok(name[str(kind)], m.group(), pos + 1))
        pos = m.end()
    toks.append(_Tok("$end", "", len(text) + 1))
    return toks


def _go_regexp_error(err: re.error, expr: str) -> str:
    msg = str(err.msg)
    code = {
        "missing ), unterminated subpattern": "missing closing )",
        "unbalanced parenthesis": "unexpected )",
        "nothing to repeat": "missing argument to repetition operator",
        "unterminated character set": "missing closing ]",
    }.get(msg, msg)
    return f"error parsing regexp: {code}: `{expr}`"


def parse_log_query(text: str) -> LogQuery:
    """Parse the LogQL subset; raise :class:`QueryError` with Loki's message on a bad query."""
    toks = _tokens(text)
    i = 0

    def unexpected(tok: _Tok, expecting: str) -> QueryError:
        tail = f", expecting {expecting}" if expecting else ""
        return QueryError(f"parse error at line 1, col {tok.col}: syntax error: unexpected {tok.shown}{tail}")

    first = toks[0]
    if first.kind == "IDENTIFIER":
        raise QueryError(
            f"parse error at line 1, col {first.col}: the Loki test peer supports log queries only "
            f"(stream selector and line filters), not {first.text}(...)"
        )
    if first.text != "{":
        raise unexpected(first, "{")
    i = 1
    matchers: list[Matcher] = []
    while toks[i].text != "}":
        if matchers:
            if toks[i].text != ",":
                raise unexpected(toks[i], ", or }")
            i += 1
        name, op, val = toks[i], toks[i + 1] if i + 1 < len(toks) else toks[-1], None
        if name.kind != "IDENTIFIER":
            raise unexpected(name, "IDENTIFIER" if matchers else "IDENTIFIER or }")
        if op.text not in ("=", "!=", "=~", "!~"):
            raise unexpected(op, "= or != or =~ or !~")
        val = toks[i + 2]
        if val.kind != "STRING":
            raise unexpected(val, "STRING")
        try:
            value = _go_unquote(val.text)
        except (ValueError, IndexError) as err:
            raise QueryError(f"parse error at line 1, col {val.col}: invalid syntax") from err
        regex = None
        if op.text in ("=~", "!~"):
            try:
                regex = re.compile(value, re.DOTALL)
            except re.error as err:
                problem = _go_regexp_error(err, value)
                raise QueryError(f"parse error at line 1, col {val.col}: {problem}") from err
        matchers.append(Matcher(name.text, op.text, value, regex))
        i += 3
    i += 1
    filters: list[LineFilter] = []
    while toks[i].kind != "$end":
        op = toks[i]
        if op.text not in ("|=", "!=", "|~", "!~"):
            if op.text == "|":
                raise QueryError(
                    f"parse error at line 1, col {op.col}: the Loki test peer supports line filters only, "
                    "not pipeline stages"
                )
            raise unexpected(op, "")
        lit = toks[i + 1]
        if lit.kind != "STRING":
            raise unexpected(lit, "STRING or ip")
        try:
            value = _go_unquote(lit.text)
        except (ValueError, IndexError) as err:
            raise QueryError(f"parse error at line 1, col {lit.col}: invalid syntax") from err
        regex = None
        if op.text in ("|~", "!~"):
            try:
                regex = re.compile(value)
            except re.error as err:
                stage = f"{op.text} {lit.text}"
                raise QueryError(f"parse error : stage '{stage}' : {_go_regexp_error(err, value)}") from err
        filters.append(LineFilter(op.text, value, regex))
        i += 2
    if not any(m.op in ("=", "=~") and not m.matches("") for m in matchers):
        raise QueryError(EMPTY_MATCHERS)
    return LogQuery(tuple(matchers), tuple(filters))


# --- metric subset: [sum [by (labels)]] (count_over_time(LOG_QUERY [RANGE])) -----------------------

MAX_POINTS = 11_000
TOO_MANY_POINTS = (
    "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
)
_PROM_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_PROM_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_METRIC_HEAD = re.compile(
    r"\s*(?P<sum>sum\s*(?:by\s*\(\s*(?P<by>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)?\s*\)\s*)?\(\s*)?"
    r"count_over_time\s*\("
)


@dataclass(frozen=True)
class MetricQuery:
    log: LogQuery
    range_ns: int
    grouping: tuple[str, ...] | None  # None: one series per stream; (): one sum; names: ``sum by``


def parse_prom_duration(text: str) -> int:
    """Prometheus' ``model.ParseDuration`` (what Loki uses inside ``[...]``): ``ms`` is the smallest unit."""
    m = _PROM_DURATION.fullmatch(text)
    if text != "0" and (m is None or not any(m.groups())):
        raise QueryError(f'not a valid duration string: "{text}"')
    if m is None:
        return 0
    return sum(int(g) * u for g, u in zip(m.groups(), _PROM_UNITS_MS, strict=True) if g) * 1_000_000


def is_metric_query(text: str) -> bool:
    return re.match(r"\s*[A-Za-z_]", text) is not None


def parse_metric_query(text: str) -> MetricQuery:
    """Parse the metric subset; anything else is refused with a message naming what the peer supports."""
    m = _METRIC_HEAD.match(text)
    unsupported = QueryError(
        "parse error at line 1, col 1: the Loki test peer supports metric queries of the form "
        "[sum [by (labels)]] (count_over_time(<log query> [range])) only"
    )
    if m is None:
        raise unsupported
    summed = m.group("sum") is not None
    rest = text[m.end() :]
    for _ in range(2 if summed else 1):
        rest = rest.rstrip()
        if not rest.endswith(")"):
            raise unsupported
        rest = rest[:-1]
    rest = rest.rstrip()
    bracket = rest.rfind("[")
    if not rest.endswith("]") or bracket < 0:
        raise unsupported
    range_text = rest[bracket + 1 : -1].strip()
    log = parse_log_query(rest[:bracket])
    try:
        range_ns = parse_prom_duration(range_text)
    except QueryError as err:
        raise QueryError(f"parse error at line 1, col {m.end() + bracket + 1}: {err}") from err
    by = m.group("by")
    grouping = tuple(x.strip() for x in by.split(",")) if by else (() if summed else None)
    return MetricQuery(log, range_ns, grouping)


def prom_time(ns: int) -> int | float:
    """A sample time as Loki writes it: seconds, cut to milliseconds, without a trailing ``.0``."""
    ms = ns // 1_000_000
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def parse_step(value: str | None, start: int, end: int) -> int:
    """``step`` in ns: float seconds or a duration; Loki's default is (end - start) / 250, at least 1s."""
    if not value:
        return max((end - start) // NS // 250, 1) * NS
    try:
        step = int(round(float(value) * NS))
    except ValueError:
        step = parse_prom_duration(value)
    if step <= 0:
        raise QueryError("zero or negative query resolution step widths are not accepted. Try a positive integer")
    return step


# --- what Loki adds at push ----------------------------------------------------------------------

_LEVEL_NAMES = {
    "trace": "trace", "trc": "trace", "debug": "debug", "dbg": "debug", "info": "info", "inf": "info",
    "information": "info", "warn": "warn", "wrn": "warn", "warning": "warn", "error": "error", "err": "error",
    "critical": "critical", "fatal": "fatal",
}  # fmt: skip
_LOGFMT = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')
_KEYWORDS = (
    ("critical", "critical"), ("fatal", "fatal"), ("error", "error"), ("err:", "error"), ("[err]", "error"),
    ("warn", "warn"), ("info", "info"), ("debug", "debug"), ("trace", "trace"),
)  # fmt: skip


def _normalize_level(value: str) -> str:
    return _LEVEL_NAMES.get(value.lower(), value)


def _json_level(obj: Any, depth: int = 0) -> str | None:
    if not isinstance(obj, dict) or depth > 10:
        return None
    for key, value in obj.items():
        if isinstance(value, str) and key in LEVEL_FIELDS:
            return value
        if isinstance(value, dict):
            found = _json_level(value, depth + 1)
            if found is not None:
                return found
    return None


def detect_level(line: str, labels: Mapping[str, str], metadata: Mapping[str, str]) -> str:
    """``detected_level`` the way Loki derives it: a level label or field first, then keywords."""
    for source in (labels, metadata):
        for name in LEVEL_FIELDS:
            if name in source:
                return _normalize_level(source[name])
    stripped = line.strip()
    found: str | None = None
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            found = _json_level(json.loads(stripped))
        except ValueError:
            found = None
    elif "=" in line:
        for key, value in _LOGFMT.findall(line):
            if key in LEVEL_FIELDS:
                found = value.strip('"')
                break
    if found is not None and found.lower() in _LEVEL_NAMES:
        return _LEVEL_NAMES[found.lower()]
    lower = line.lower()
    for word, level in _KEYWORDS:
        if word in lower:
            return level
    return "unknown"


def with_service_name(labels: Mapping[str, str]) -> dict[str, str]:
    out = dict(labels)
    if "service_name" not in out:
        out["service_name"] = next((out[k] for k in SERVICE_NAME_SOURCES if out.get(k)), "unknown_service")
    return out


def label_string(labels: Mapping[str, str]) -> str:
    """Prometheus form, sorted: ``{app="x", pod="y"}``."""
    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` for durations of a second or more."""
    if ns < NS:
        return f"{ns / 1e6:g}ms" if ns >= 1_000_000 else f"{ns}ns"
    hours, rem = divmod(ns, HOUR_NS)
    minutes, rem = divmod(rem, 60 * NS)
    secs, frac = divmod(rem, NS)
    sec_text = str(secs) + (("." + f"{frac:09d}".rstrip("0")) if frac else "")
    if hours:
        return f"{hours}h{minutes}m{sec_text}s"
    if minutes:
        return f"{minutes}m{sec_text}s"
    return f"{sec_text}s"


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_loki_time(value: str | None, default_ns: int) -> int:
    """Loki's ``parseTimestamp``: nanoseconds, seconds (<= 10 digits), float seconds or RFC3339."""
    if value is None or value == "":
        return default_ns
    if "." in value:
        try:
            return int(round(float(value) * NS))
        except ValueError:
            pass
    try:
        number = int(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise QueryError(f'invalid parameter: cannot parse "{value}" to a valid timestamp') from err
        return int(when.timestamp()) * NS + when.microsecond * 1000
    return number * NS if len(value) <= 10 else number


# --- storage -------------------------------------------------------------------------------------


@dataclass
class _Stream:
    labels: dict[str, str]
    key: str
    ts: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    meta: list[Mapping[str, str]] = field(default_factory=list)
    seen: set[tuple[int, str]] = field(default_factory=set)
    dirty: bool = False

    def add(self, ts: int, line: str, meta: Mapping[str, str]) -> bool:
        if (ts, line) in self.seen:  # Loki drops an exact duplicate (same stream, ts and line)
            return False
        self.seen.add((ts, line))
        if self.ts and ts < self.ts[-1]:
            self.dirty = True
        self.ts.append(ts)
        self.lines.append(line)
        self.meta.append(meta)
        return True

    def sort(self) -> None:
        if self.dirty:
            order = sorted(range(len(self.ts)), key=self.ts.__getitem__)
            self.ts = [self.ts[i] for i in order]
            self.lines = [self.lines[i] for i in order]
            self.meta = [self.meta[i] for i in order]
            self.dirty = False

    def scan(self, start: int, end: int, forward: bool) -> Iterator[int]:
        lo = bisect.bisect_left(self.ts, start)
        hi = bisect.bisect_left(self.ts, end)
        return iter(range(lo, hi)) if forward else iter(range(hi - 1, lo - 1, -1))


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) answering one request."""

    status: int | None = None  # None: answer normally (after ``delay``)
    body: bytes | str = b""
    content_type: str = TEXT
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False  # close the socket without any response
    path: str | None = None  # only requests to this path; None: any path


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


@dataclass
class _Auth:
    tenant_required: bool = False
    basic: tuple[str, str] | None = None
    bearer: str | None = None
    echo: bool = False  # a 401 body repeats the Authorization header (a hostile proxy; no recording)


class LokiPeer:
    """An in-memory Loki on 127.0.0.1 (a port chosen by the OS). Use as a context manager."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        ready_after: int = 0,
        check_push_age: bool = True,
        tie_order: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.ready_after = ready_after
        self.check_push_age = check_push_age
        # A fault mode: lines of different streams sharing a timestamp come in a new order on each query.
        self.tie_order = tie_order
        self.requests: list[RecordedRequest] = []
        self._streams: dict[str, _Stream] = {}
        self._faults: collections.deque[Fault] = collections.deque()
        self._ready_calls = 0
        self._auth = _Auth()
        self._lock = threading.RLock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    @property
    def url(self) -> str:
        assert self._server is not None, "peer not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LokiPeer:
        handler = type("_BoundHandler", (_Handler,), {"peer": self})
        server = _Server(("127.0.0.1", 0), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="loki-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LokiPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls

    def inject(self, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def fail_next(self, status: int, times: int = 1, *, body: str = "", retry_after: str | None = None,
                  path: str | None = QUERY_RANGE) -> None:  # fmt: skip
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        text = body or {429: "Too Many Requests", 503: "Service Unavailable"}.get(status, f"error {status}")
        self.inject(Fault(status=status, body=text, headers=headers, path=path), times)

    def reset_next(self, times: int = 1, *, path: str | None = QUERY_RANGE) -> None:
        self.inject(Fault(reset=True, path=path), times)

    def delay_next(self, seconds: float, times: int = 1, *, path: str | None = QUERY_RANGE) -> None:
        self.inject(Fault(delay=seconds, path=path), times)

    def malformed_next(self, body: bytes, times: int = 1, *, path: str | None = QUERY_RANGE) -> None:
        self.inject(Fault(status=200, body=body, content_type=JSON_QUERY, path=path), times)

    def require_tenant(self) -> None:
        self._auth.tenant_required = True

    def require_basic(self, username: str, password: str) -> None:
        self._auth.basic = (username, password)

    def require_bearer(self, token: str) -> None:
        self._auth.bearer = token

    def clear(self) -> None:
        """Forget every stored line, recorded request, fault and fault mode (one peer reused across tests)."""
        with self._lock:
            self._streams.clear()
            self.requests.clear()
            self._faults.clear()
            self.tie_order = None

    def echo_auth_in_401(self) -> None:
        """Like a careless proxy: every 401 body ends with the request's Authorization header."""
        self._auth.echo = True

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    @property
    def line_count(self) -> int:
        with self._lock:
            return sum(len(s.ts) for s in self._streams.values())

    def add_lines(
        self,
        labels: Mapping[str, str],
        entries: Iterable[tuple[int, str] | tuple[int, str, Mapping[str, str]]],
        *,
        detect_levels: bool = True,
    ) -> int:
        """Load entries of one stream straight into memory (no HTTP, no age check); returns how many were new.

        Like a push, it adds ``service_name`` and ``detected_level`` and drops exact duplicates.
        """
        stream_labels = with_service_name(labels)
        key = label_string(stream_labels)
        added = 0
        with self._lock:
            stream = self._streams.get(key)
            if stream is None:
                stream = self._streams[key] = _Stream(stream_labels, key)
            level_cache: dict[str, Mapping[str, str]] = {}
            for entry in entries:
                ts, line = entry[0], entry[1]
                meta: Mapping[str, str] = entry[2] if len(entry) > 2 else {}
                if detect_levels and "detected_level" not in meta:
                    if meta:
                        meta = {**meta, "detected_level": detect_level(line, stream_labels, meta)}
                    else:
                        level = detect_level(line, stream_labels, meta)
                        meta = level_cache.setdefault(level, {"detected_level": level})
                added += stream.add(int(ts), line, meta)
        return added

    # -- the API behind HTTP (called by the handler)

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path == path:
                    del self._faults[i]
                    return fault
        return None

    def _check_auth(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        denied = self._deny(headers)
        if denied is not None and self._auth.echo:
            return denied[0], denied[1].rstrip("\n") + f" (Authorization: {headers.get('authorization', '')})\n"
        return denied

    def _deny(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        auth = self._auth
        if auth.tenant_required and not headers.get("x-scope-orgid"):
            return 401, "no org id\n"
        given = headers.get("authorization", "")
        if auth.basic is not None:
            want = "Basic " + base64.b64encode(f"{auth.basic[0]}:{auth.basic[1]}".encode()).decode()
            if given != want:
                return 401, "invalid username or password\n"
        if auth.bearer is not None and given != f"Bearer {auth.bearer}":
            return 401, "invalid bearer token\n"
        return None

    def ready(self) -> tuple[int, str]:
        with self._lock:
            n = self._ready_calls
            self._ready_calls += 1
        if n < self.ready_after:
            return 503, READY_STARTUP_MESSAGES[n % len(READY_STARTUP_MESSAGES)]
        return 200, "ready\n"

    def push(self, body: bytes, content_type: str) -> tuple[int, str]:
        if "json" not in content_type:
            return 415, f"unsupported Content-Type {content_type!r}: the Loki test peer reads JSON only\n"
        try:
            doc = json.loads(body)
            streams = doc["streams"]
            parsed = []
            for s in streams:
                labels = s.get("stream") or {}
                values = s["values"]
                if not isinstance(labels, dict) or not isinstance(values, list):
                    raise TypeError("stream")
                parsed.append((labels, values))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            return 400, _push_json_error(body, err)
        now_ns = int(self.clock() * NS)
        problems: list[str] = []
        for labels, values in parsed:
            stream_labels = with_service_name(labels)
            shown = label_string(stream_labels)
            good: list[tuple[int, str, Mapping[str, str]]] = []
            for v in values:
                ts = int(v[0])
                if self.check_push_age and ts < now_ns - REJECT_OLD_NS:
                    problems.append(
                        f"entry for stream '{shown}' has timestamp too old: {rfc3339(ts)}, "
                        f"oldest acceptable timestamp is: {rfc3339(now_ns - REJECT_OLD_NS)}"
                    )
                    continue
                if self.check_push_age and ts > now_ns + CREATION_GRACE_NS:
                    problems.append(f"entry for stream '{shown}' has timestamp too new: {rfc3339(ts)}")
                    continue
                good.append((ts, v[1], v[2]) if len(v) > 2 and v[2] else (ts, v[1]))  # type: ignore[arg-type]
            self.add_lines(labels, good)
        if problems:
            return 400, "\n".join(problems) + "\n"
        return 204, ""

    def query_range(self, params: Mapping[str, str], categorize: bool) -> dict[str, Any]:
        now_ns = int(self.clock() * NS)
        end = parse_loki_time(params.get("end"), now_ns)
        start = parse_loki_time(params.get("start"), end - HOUR_NS)
        limit_text = params.get("limit") or str(DEFAULT_LIMIT)
        try:
            limit = int(limit_text)
        except ValueError as err:
            raise QueryError(f'strconv.ParseInt: parsing "{limit_text}": invalid syntax') from err
        direction = (params.get("direction") or "backward").lower()
        if direction not in ("forward", "backward"):
            raise QueryError(f"invalid direction '{params.get('direction')}'")
        if end <= start:
            raise QueryError("end timestamp must not be before or equal to start time")
        if limit <= 0:
            raise QueryError("limit must be a positive value")
        text = params.get("query") or ""
        if is_metric_query(text):
            return self.metric_range(parse_metric_query(text), start, end, params.get("step"))
        query = parse_log_query(text)
        if limit > MAX_ENTRIES:
            raise QueryError(
                f"max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {MAX_ENTRIES})"
            )
        length_ns = (end // 1_000_000 - start // 1_000_000) * 1_000_000
        if length_ns > MAX_QUERY_LENGTH_NS:
            raise QueryError(
                f"the query time range exceeds the limit (query length: {go_duration(length_ns)}, "
                f"limit: {MAX_QUERY_LENGTH_TEXT})"
            )
        started = time.perf_counter()
        picked, scanned, scanned_bytes = self._select(query, start, end, limit, direction == "forward")
        return {
            "status": "success",
            "data": _streams_data(picked, categorize, scanned, scanned_bytes, time.perf_counter() - started),
        }

    def _select(
        self, query: LogQuery, start: int, end: int, limit: int, forward: bool
    ) -> tuple[list[tuple[int, _Stream, int]], int, int]:
        counters = [0, 0]

        def run(stream: _Stream, rank: str) -> Iterator[tuple[int, str, int, _Stream]]:
            for i in stream.scan(start, end, forward):
                line = stream.lines[i]
                counters[0] += 1
                counters[1] += len(line)
                if query.keep(line):
                    yield stream.ts[i], rank, i, stream

        with self._lock:
            streams = [s for s in self._streams.values() if query.selects(s.labels)]
            for s in streams:
                s.sort()
            # Equal timestamps of different streams: by stream labels, or in a new order on every query.
            ranks = [s.key for s in streams]
            if self.tie_order is not None:
                self.tie_order.shuffle(ranks)
            merged = heapq.merge(*(run(s, r) for s, r in zip(streams, ranks, strict=True)), reverse=not forward)
            picked = [(ts, s, i) for ts, _key, i, s in itertools.islice(merged, limit)]
        return picked, counters[0], counters[1]

    def metric_instant(self, query: MetricQuery, at: int) -> dict[str, Any]:
        started = time.perf_counter()
        series, scanned, scanned_bytes = self._count(query, [at])
        result = [{"metric": labels, "value": [prom_time(t), str(n)]} for labels, points in series for t, n in points]
        return {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": result,
                "stats": stats(len(result), scanned, scanned_bytes, time.perf_counter() - started),
            },
        }

    def metric_range(self, query: MetricQuery, start: int, end: int, step_text: str | None) -> dict[str, Any]:
        step = parse_step(step_text, start, end)
        if (end - start) // step > MAX_POINTS:
            raise QueryError(TOO_MANY_POINTS)
        # Loki aligns a metric range to its step: the start rounded down, the end rounded up.
        first = start - start % step
        last = end + (-end % step)
        started = time.perf_counter()
        series, scanned, scanned_bytes = self._count(query, list(range(first, last + 1, step)))
        result = [
            {"metric": labels, "values": [[prom_time(t), str(n)] for t, n in points]} for labels, points in series
        ]
        return {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": result,
                "stats": stats(len(result), scanned, scanned_bytes, time.perf_counter() - started),
            },
        }

    def _count(
        self, query: MetricQuery, points: Sequence[int]
    ) -> tuple[list[tuple[dict[str, str], list[tuple[int, int]]]], int, int]:
        """count_over_time at each point ``t`` over ``(t - range, t]`` (the lower bound excluded, as Loki does)."""
        counts: dict[str, tuple[dict[str, str], dict[int, int]]] = {}
        scanned = scanned_bytes = 0
        with self._lock:
            for stream in self._streams.values():
                if not query.log.selects(stream.labels):
                    continue
                stream.sort()
                for t in points:
                    lo = bisect.bisect_right(stream.ts, t - query.range_ns)
                    hi = bisect.bisect_right(stream.ts, t)
                    for i in range(lo, hi):
                        line = stream.lines[i]
                        scanned += 1
                        scanned_bytes += len(line)
                        if not query.log.keep(line):
                            continue
                        labels = {**stream.labels, **stream.meta[i]}
                        if query.grouping is not None:
                            labels = {k: labels[k] for k in query.grouping if labels.get(k)}
                        key = label_string(labels)
                        entry = counts.get(key)
                        if entry is None:
                            entry = counts[key] = (dict(sorted(labels.items())), {})
                        entry[1][t] = entry[1].get(t, 0) + 1
        series = [(labels, sorted(by_t.items())) for _, (labels, by_t) in sorted(counts.items())]
        return series, scanned, scanned_bytes

    def label_names(self, start: int, end: int) -> list[str]:
        with self._lock:
            names = {n for s in self._streams.values() if any(True for _ in s.scan(start, end, True))
                     for n in s.labels}  # fmt: skip
        return sorted(names)

    def label_values(self, name: str, start: int, end: int, query: LogQuery | None) -> list[str]:
        with self._lock:
            values = {
                s.labels[name]
                for s in self._streams.values()
                if name in s.labels
                and (query is None or query.selects(s.labels))
                and any(True for _ in s.scan(start, end, True))
            }
        return sorted(values)

    def series(self, queries: Sequence[LogQuery], start: int, end: int) -> list[dict[str, str]]:
        with self._lock:
            return [
                dict(sorted(s.labels.items()))
                for s in sorted(self._streams.values(), key=lambda s: s.key)
                if any(q.selects(s.labels) for q in queries) and any(True for _ in s.scan(start, end, True))
            ]


def _streams_data(
    picked: list[tuple[int, _Stream, int]], categorize: bool, scanned: int, scanned_bytes: int, took: float
) -> dict[str, Any]:
    groups: dict[str, tuple[dict[str, str], list[list[Any]]]] = {}
    for ts, stream, i in picked:
        meta = stream.meta[i]
        line = stream.lines[i]
        if categorize:
            labels = stream.labels
            key = stream.key
            value: list[Any] = [str(ts), line]
            if meta:
                value.append({"structuredMetadata": dict(meta)})
        else:
            labels = {**stream.labels, **meta} if meta else stream.labels
            key = label_string(labels) if meta else stream.key
            value = [str(ts), line]
        group = groups.get(key)
        if group is None:
            group = groups[key] = (dict(sorted(labels.items())), [])
        group[1].append(value)
    result = [{"stream": labels, "values": values} for _, (labels, values) in sorted(groups.items())]
    data: dict[str, Any] = {"resultType": "streams"}
    if categorize:
        data["encodingFlags"] = ["categorize-labels"]
    data["result"] = result
    data["stats"] = stats(len(picked), scanned, scanned_bytes, took)
    return data


def _cache_stats() -> dict[str, int]:
    return dict.fromkeys(
        ("entriesFound", "entriesRequested", "entriesStored", "bytesReceived", "bytesSent", "requests",
         "downloadTime", "queryLengthServed"), 0)  # fmt: skip


def _store_stats() -> dict[str, Any]:
    return {
        "totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0,
        "queryReferencedStructuredMetadata": False, "queryUsedV2Engine": False,
        "chunk": {"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": 0, "decompressedLines": 0,
                  "compressedBytes": 0, "totalDuplicates": 0, "postFilterLines": 0,
                  "headChunkStructuredMetadataBytes": 0, "decompressedStructuredMetadataBytes": 0},
        "chunkRefsFetchTime": 0, "congestionControlLatency": 0, "pipelineWrapperFilteredLines": 0,
        "dataobj": dict.fromkeys(
            ("prePredicateDecompressedRows", "prePredicateDecompressedBytes",
             "prePredicateDecompressedStructuredMetadataBytes", "postPredicateRows",
             "postPredicateDecompressedBytes", "postPredicateStructuredMetadataBytes", "postFilterRows",
             "pagesScanned", "pagesDownloaded", "pagesDownloadedBytes", "pageBatches", "totalRowsAvailable",
             "totalPageDownloadTime", "wireBytesTransferred"), 0),
    }  # fmt: skip


def stats(returned: int, scanned: int, scanned_bytes: int, took: float) -> dict[str, Any]:
    """Loki 3.8's ``data.stats`` object (same keys, plausible numbers)."""
    took = max(took, 1e-6)
    ingester_store = _store_stats()
    ingester_store["chunk"].update(headChunkBytes=scanned_bytes, headChunkLines=scanned, postFilterLines=returned)
    ingester: dict[str, Any] = {
        "totalReached": 0,
        "totalChunksMatched": 0,
        "totalBatches": 0,
        "totalLinesSent": returned,
        "store": ingester_store,
    }
    if scanned:  # an ingester held the lines; Loki omits the zero wait time otherwise
        ingester.update(totalReached=1, totalChunksMatched=1, totalBatches=1, recvWaitTime=0.0001)
    return {
        "summary": {
            "bytesProcessedPerSecond": int(scanned_bytes / took),
            "linesProcessedPerSecond": int(scanned / took),
            "totalBytesProcessed": scanned_bytes, "totalLinesProcessed": scanned, "execTime": round(took, 6),
            "queueTime": 0.00005, "subqueries": 0, "totalEntriesReturned": returned, "splits": 0, "shards": 1,
            "totalPostFilterLines": returned, "totalStructuredMetadataBytesProcessed": 0,
        },
        "querier": {"store": _store_stats(), "querierExecTime": round(took, 6)},
        "ingester": ingester,
        "cache": {name: _cache_stats() for name in (
            "chunk", "index", "result", "statsResult", "volumeResult", "seriesResult", "labelResult",
            "instantMetricResult", "logResult", "taskResult")},
        "index": {"totalChunks": 0, "postFilterChunks": 0, "shardsDuration": 0, "usedBloomFilters": False,
                  "totalStreams": 0, "chunkRefsLookupTime": 0, "bloomFilterTime": 0},
    }  # fmt: skip


def _push_json_error(body: bytes, err: Exception) -> str:
    """Loki's jsoniter-style message for a push body it cannot decode."""
    pos = getattr(err, "pos", None)
    pos = len(body) if pos is None else pos
    text = body.decode("utf-8", "replace")
    near = text[max(0, pos - 10) : pos]
    context = text[max(0, pos - 50) : pos + 50]
    return (
        f"loghttp.PushRequest.Streams: []loghttp.LogProtoStream: {type(err).__name__}: {err}, "
        f"error found in #{min(pos, 10)} byte of ...|{near}|..., bigger context ...|{context}|...\n"
    )


# --- HTTP -----------------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: resets are on purpose
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    peer: LokiPeer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # status line, headers and body leave in one write

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Loki sends no Server header: only the status line and Date.
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _answer(self, status: int, body: bytes | str = b"", content_type: str | None = None,
                headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        path = urlsplit(self.path).path
        if status != 204:
            content_type = content_type or TEXT
            self.send_header("Content-Type", content_type)
            if path.startswith("/loki/api/v1/") and path not in (PUSH, BUILDINFO):
                self.send_header("Vary", "Accept-Encoding")
            if content_type == TEXT:
                self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204 and self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, doc: Any) -> None:
        self._answer(200, json.dumps(doc, separators=(",", ":"), ensure_ascii=False), JSON_QUERY)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        peer = self.peer
        split = urlsplit(self.path)
        path = split.path
        raw_params = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.command == "POST" and "application/x-www-form-urlencoded" in headers.get("content-type", ""):
            for k, v in parse_qs(body.decode(), keep_blank_values=True).items():
                raw_params.setdefault(k, []).extend(v)
        with peer._lock:
            peer.requests.append(RecordedRequest(self.command, path, raw_params, headers, body))
        fault = peer._next_fault(path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fault.status is not None:
                self._answer(fault.status, fault.body, fault.content_type, fault.headers)
                return
        params = {k: v[0] for k, v in raw_params.items()}
        if path == READY:
            status, text = peer.ready()
            self._answer(status, text)
            return
        denied = peer._check_auth(headers)
        if denied is not None:
            self._answer(denied[0], denied[1])
            return
        now_ns = int(peer.clock() * NS)
        try:
            if path == PUSH and self.command == "POST":
                status, text = peer.push(body, headers.get("content-type", ""))
                self._answer(status, text)
            elif path == QUERY_RANGE:
                categorize = "categorize-labels" in headers.get("x-loki-response-encoding-flags", "")
                self._json(peer.query_range(params, categorize))
            elif path == QUERY:
                text = params.get("query") or ""
                if is_metric_query(text):
                    self._json(
                        peer.metric_instant(parse_metric_query(text), parse_loki_time(params.get("time"), now_ns))
                    )
                    return
                parse_log_query(text)
                raise QueryError(
                    "log queries are not supported as an instant query type, please change your query to a "
                    "range query type"
                )
            elif path == LABELS or path == "/loki/api/v1/label":
                end = parse_loki_time(params.get("end"), now_ns)
                start = parse_loki_time(params.get("start"), end - 6 * HOUR_NS)
                self._json({"status": "success", "data": peer.label_names(start, end)})
            elif path.startswith("/loki/api/v1/label/") and path.endswith("/values"):
                name = path[len("/loki/api/v1/label/") : -len("/values")]
                end = parse_loki_time(params.get("end"), now_ns)
                start = parse_loki_time(params.get("start"), end - 6 * HOUR_NS)
                q = parse_log_query(params["query"]) if params.get("query") else None
                self._json({"status": "success", "data": peer.label_values(name, start, end, q)})
            elif path == SERIES:
                end = parse_loki_time(params.get("end"), now_ns)
                start = parse_loki_time(params.get("start"), end - 6 * HOUR_NS)
                queries = [parse_log_query(q) for q in raw_params.get("match[]", [])]
                self._json({"status": "success", "data": peer.series(queries, start, end)})
            elif path == BUILDINFO:
                self._answer(200, json.dumps(BUILDINFO_BODY, separators=(",", ":")), "application/json")
            else:
                self._answer(404, "404 page not found\n")
        except QueryError as err:
            self._answer(400, str(err))


@pytest.fixture
def loki_peer() -> Iterator[LokiPeer]:
    """A fresh Loki test peer on 127.0.0.1 for one test."""
    with LokiPeer() as peer:
        yield peer
