"""Grafana Loki adapter: a paginated ``query_range`` reader over an injected ``httpx.Client``.

Loki's ``query_range`` treats ``start`` as inclusive and ``end`` as exclusive (nanoseconds), returns at
most ``limit`` entries (5000 at most) merged over every matching stream, and splits one pod's lines
over several streams (``detected_level``, structured metadata). :meth:`LokiClient.fetch` walks a
window forward page by page:

* the next page starts at the last timestamp of the previous page (inclusive), and the entries
  already yielded at exactly that timestamp are skipped (a multiset of ``(stream labels, line)``):
  nothing is lost when several lines share the boundary timestamp, nothing is counted twice;
* a full page made of one single timestamp cannot move the cursor, so that nanosecond is read on its
  own (``[ts, ts+1)``, ``limit=5000``); if even that overflows, :class:`LokiError` says so.

Errors are translated here, at the edge: connection errors, 5xx and 429 are retried with exponential
backoff and full jitter (``Retry-After`` honoured), then raise :class:`LokiUnavailable`; 400 raises
:class:`LokiQueryError`, 401/403 :class:`LokiAuthError`, each with Loki's own message (capped).
Credentials never reach a log line, a ``repr`` or an exception message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import operator
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Final, TypedDict

import httpx

from sentinel.core.model import LogEntry
from sentinel.errors import (
    ConfigError,
    LokiAuthError,
    LokiError,
    LokiQueryError,
    LokiUnavailable,
    cap,
    redact,
)

log = logging.getLogger(__name__)

QUERY_RANGE_PATH: Final = "/loki/api/v1/query_range"
READY_PATH: Final = "/ready"
MAX_LIMIT: Final = 5000
"""Loki's default ``max_entries_limit_per_query``."""

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_PROBE_LOOKBACK_NS: Final = 3600 * 1_000_000_000


# --- Loki's JSON (not ours: typed where it comes from) ------------------------------------------


class LokiStream(TypedDict):
    stream: dict[str, str]
    values: list[list[Any]]  # [ts_ns: str, line: str] or [ts_ns, line, {structuredMetadata...}]


class LokiStreamsData(TypedDict, total=False):
    resultType: str
    result: list[LokiStream]
    stats: dict[str, Any]
    encodingFlags: list[str]


class LokiQueryResponse(TypedDict):
    status: str
    data: LokiStreamsData


# --- the HTTP client ------------------------------------------------------------------------------


class _BearerAuth(httpx.Auth):
    """``Authorization: Bearer ...`` whose repr does not show the token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(token=***)"


def build_http_client(
    *,
    url: str,
    tenant_id: str = "",
    username: str = "",
    password: str = "",
    bearer_token: str = "",
    tls_verify: bool = True,
    ca_file: str = "",
    timeout: float = 30.0,
) -> httpx.Client:
    """An ``httpx.Client`` for Loki at ``url`` (a path prefix such as ``/loki`` behind a gateway is kept).

    ``tenant_id`` becomes ``X-Scope-OrgID``; ``username``/``password`` basic auth, or ``bearer_token``
    (not both). ``ca_file`` trusts a private CA; ``tls_verify=False`` turns verification off.
    """
    if not url:
        raise ConfigError("loki url is empty")
    if bearer_token and (username or password):
        raise ConfigError("loki auth: give either username/password or bearer_token, not both")
    if password and not username:
        raise ConfigError("loki auth: a password was given without a username")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as err:
        raise ConfigError(f"loki url is not a valid URL: {cap(err)}") from err
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"loki url must be http(s)://host[:port][/prefix], got scheme {parsed.scheme!r}")
    if parsed.userinfo:
        raise ConfigError("loki url must not carry credentials: use username/password or bearer_token")

    verify: ssl.SSLContext | bool
    if not tls_verify:
        verify = False
    elif ca_file:
        try:
            verify = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"loki ca_file {ca_file!r} cannot be loaded: {cap(err)}") from err
    else:
        verify = True

    auth: httpx.Auth | None = None
    if bearer_token:
        auth = _BearerAuth(bearer_token)
    elif username:
        auth = httpx.BasicAuth(username, password)

    headers = {"Accept": "application/json", "User-Agent": "kube-sentinel"}
    if tenant_id:
        headers["X-Scope-OrgID"] = tenant_id
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers=headers,
        auth=auth,
        verify=verify,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
    )


# --- response parsing (the hot path) --------------------------------------------------------------


def parse_streams(body: bytes) -> list[LogEntry]:
    """Decode a ``query_range`` streams body into entries of all streams merged in time order.

    Entries of one stream share one read-only label mapping. Raises :class:`LokiError` naming what
    was wrong when the body is not JSON or not Loki's streams shape.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise LokiError(f"Loki answered with a body that is not JSON ({cap(err)}): {cap(body[:200])}") from err
    try:
        data = doc["data"]
        if doc["status"] != "success" or data["resultType"] != "streams":
            raise LokiError(_describe_shape_problem(doc))
        entries: list[LogEntry] = []
        append = entries.append
        new = tuple.__new__  # LogEntry is a named tuple: build it without its Python-level __new__
        for stream in data["result"]:
            labels = MappingProxyType(stream["stream"])
            for ts, line, *_metadata in stream["values"]:
                if type(line) is not str:
                    raise TypeError("line")
                append(new(LogEntry, (int(ts), labels, line)))
    except LokiError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise LokiError(_describe_shape_problem(doc)) from err
    # Each stream is already in order: timsort merges the sorted runs in linear-ish time.
    entries.sort(key=_ts_key)
    return entries


_ts_key = operator.itemgetter(0)  # LogEntry.ts_ns


def _describe_shape_problem(doc: object) -> str:
    """Name the first thing in ``doc`` that is not Loki's streams shape (slow path, errors only)."""
    prefix = "Loki answered with an unexpected shape: "
    if not isinstance(doc, dict):
        return prefix + f"top level is {type(doc).__name__}, expected an object"
    if doc.get("status") != "success":
        return prefix + f"status is {cap(repr(doc.get('status')), 40)}, expected 'success'"
    data = doc.get("data")
    if not isinstance(data, dict):
        return prefix + "'data' is missing or not an object"
    if data.get("resultType") != "streams":
        return prefix + (
            f"data.resultType is {cap(repr(data.get('resultType')), 40)}, expected 'streams' "
            "(a metric query cannot be read as log lines)"
        )
    result = data.get("result")
    if not isinstance(result, list):
        return prefix + "data.result is missing or not a list"
    for i, stream in enumerate(result):
        where = f"data.result[{i}]"
        if not isinstance(stream, dict):
            return prefix + f"{where} is not an object"
        labels = stream.get("stream")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            return prefix + f"{where}.stream is missing or not an object of strings"
        values = stream.get("values")
        if not isinstance(values, list):
            return prefix + f"{where}.values is missing or not a list"
        for j, value in enumerate(values):
            vwhere = f"{where}.values[{j}]"
            if not isinstance(value, list) or len(value) < 2:
                return prefix + f"{vwhere} is not a [timestamp, line] pair"
            ts, line = value[0], value[1]
            if not isinstance(ts, str) or not ts.isdigit():
                return prefix + f"{vwhere}[0] is {cap(repr(ts), 40)}, expected a nanosecond timestamp string"
            if not isinstance(line, str):
                return prefix + f"{vwhere}[1] is {type(line).__name__}, expected a string"
    return prefix + "unknown problem"


# --- the client -----------------------------------------------------------------------------------


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _boundary_key(entry: LogEntry) -> tuple[frozenset[tuple[str, str]], str]:
    return frozenset(entry.labels.items()), entry.line


class LokiClient:
    """Reads one LogQL log query from Loki, window by window, page by page."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        query: str,
        page_limit: int = 1000,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not query.strip():
            raise ConfigError("loki query is empty")
        if not 1 <= page_limit <= MAX_LIMIT:
            raise ConfigError(f"loki page_limit must be between 1 and {MAX_LIMIT}, got {page_limit}")
        if max_retries < 0:
            raise ConfigError(f"loki max_retries must be >= 0, got {max_retries}")
        if backoff_base < 0 or backoff_max < 0:
            raise ConfigError("loki backoff_base and backoff_max must be >= 0")
        self._http = http
        self.query = query
        self.page_limit = page_limit
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        base = str(self._http.base_url)
        return f"LokiClient(base_url={base!r}, query={self.query!r}, page_limit={self.page_limit})"

    # -- public API

    def ready(self) -> tuple[bool, str]:
        """``GET /ready`` once (no retries): ``(True, "ready")`` or ``(False, why)``."""
        started = time.perf_counter()
        try:
            resp = self._http.get(READY_PATH, headers={"Accept": "text/plain"})
        except httpx.HTTPError as err:
            elapsed = time.perf_counter() - started
            log.info("loki GET %s -> %s in %.3fs", READY_PATH, type(err).__name__, elapsed)
            return False, f"cannot reach Loki: {type(err).__name__}: {cap(err)}"
        log.info("loki GET %s -> %d in %.3fs", READY_PATH, resp.status_code, time.perf_counter() - started)
        text = cap(redact(resp.text[:4096]))  # a proxy may echo our credentials
        if resp.status_code == 200:
            return True, text or "ready"
        return False, f"HTTP {resp.status_code}: {text}"

    def set_query(self, query: str) -> None:
        """Run ``query`` from the next request on (a live settings change)."""
        if not query.strip():
            raise ConfigError("loki.query: must not be empty")
        self.query = query

    def check_query(self, query: str) -> None:
        """Ask Loki to run ``query`` over the last second (one line at most) before it is used.

        ``LokiQueryError`` carries Loki's own reason when Loki refuses it; other ``LokiError`` when
        Loki cannot be asked."""
        end = time.time_ns()
        params = {"query": query, "start": str(end - 1_000_000_000), "end": str(end), "limit": "1"}
        self._get(QUERY_RANGE_PATH, params)

    def fetch(self, start_ns: int, end_ns: int) -> Iterator[list[LogEntry]]:
        """Yield every entry in ``[start_ns, end_ns)`` once, in time order, one list per page."""
        cursor = start_ns
        # entries already yielded whose timestamp equals ``cursor`` (the next page repeats them)
        seen: Counter[tuple[frozenset[tuple[str, str]], str]] = Counter()
        while cursor < end_ns:
            page = self._query_page(cursor, end_ns, self.page_limit, "forward")
            full = len(page) >= self.page_limit
            if full and page[0].ts_ns == page[-1].ts_ns:
                # One timestamp fills the page: read that nanosecond alone, as much as Loki allows.
                ts = page[0].ts_ns
                page = self._query_page(ts, ts + 1, MAX_LIMIT, "forward")
                if len(page) >= MAX_LIMIT:
                    raise LokiError(
                        f"{len(page)} or more lines share the timestamp {ts} ns: Loki cannot page through "
                        f"them without loss (max {MAX_LIMIT} per query); narrow the query {self.query!r}"
                    )
                fresh = self._drop_seen(page, ts if ts == cursor else None, seen)
                if fresh:
                    yield fresh
                cursor, seen = ts + 1, Counter()
                continue
            fresh = self._drop_seen(page, cursor, seen)
            if fresh:
                yield fresh
            if not full:
                return
            last = page[-1].ts_ns  # > cursor: the page holds more than one timestamp
            seen = Counter(_boundary_key(e) for e in reversed(page) if e.ts_ns == last)
            # entries at ``last`` that were skipped as already seen cannot exist: last > cursor
            cursor = last

    def fetch_all(self, start_ns: int, end_ns: int) -> list[LogEntry]:
        """Every entry in ``[start_ns, end_ns)``, in time order."""
        out: list[LogEntry] = []
        for page in self.fetch(start_ns, end_ns):
            out.extend(page)
        return out

    def probe(self) -> str:
        """``/ready`` plus one ``limit=1`` query over the last hour; a one-line verdict or an error."""
        ok, why = self.ready()
        if not ok:
            raise LokiUnavailable(f"Loki is not ready: {why}", delay=self.backoff_base)
        end = time.time_ns()
        page = self._query_page(end - _PROBE_LOOKBACK_NS, end, 1, "backward")
        if page:
            latest = page[-1].ts
            return f"Loki ready; query {self.query!r} matched lines in the last hour (latest at {latest:.3f})"
        return f"Loki ready; query {self.query!r} is valid but matched no line in the last hour"

    # -- internals

    @staticmethod
    def _drop_seen(
        page: list[LogEntry], ts: int | None, seen: Counter[tuple[frozenset[tuple[str, str]], str]]
    ) -> list[LogEntry]:
        if ts is None or not seen or not page or page[0].ts_ns != ts:
            return page
        left = seen.copy()
        fresh: list[LogEntry] = []
        for i, entry in enumerate(page):
            if entry.ts_ns != ts:
                fresh.extend(page[i:])
                break
            key = _boundary_key(entry)
            if left[key] > 0:
                left[key] -= 1
            else:
                fresh.append(entry)
        return fresh

    def _query_page(self, start_ns: int, end_ns: int, limit: int, direction: str) -> list[LogEntry]:
        params = {
            "query": self.query,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": direction,
        }
        resp = self._get(QUERY_RANGE_PATH, params)
        return parse_streams(resp.content)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in ``[0, min(max, base * 2**attempt)]``."""
        return self._rng.uniform(0.0, min(self.backoff_max, self.backoff_base * (2.0**attempt)))

    def _get(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """GET with retries on connection errors, 5xx and 429; Loki's refusals become our errors."""
        summary = " ".join(f"{k}={v}" for k, v in params.items() if k != "query")
        attempt = 0
        while True:
            started = time.perf_counter()
            retry_after: float | None = None
            cause: Exception | None = None
            try:
                resp = self._http.get(path, params=params)
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.TooManyRedirects) as err:
                log.info("loki GET %s %s -> %s", path, summary, type(err).__name__)
                raise LokiError(f"cannot query Loki at {path}: {type(err).__name__}: {cap(err)}") from err
            except httpx.TransportError as err:
                elapsed = time.perf_counter() - started
                log.info(
                    "loki GET %s %s -> %s in %.3fs (attempt %d)",
                    path,
                    summary,
                    type(err).__name__,
                    elapsed,
                    attempt + 1,
                )
                status: int | None = None
                reason = f"{type(err).__name__}: {cap(err) or 'no detail'}"
                cause = err
            except httpx.HTTPError as err:  # DecodingError and the like: not worth retrying
                log.info("loki GET %s %s -> %s", path, summary, type(err).__name__)
                what = f"{type(err).__name__}: {cap(err)}"
                raise LokiError(f"cannot read Loki's answer for {path}: {what}") from err
            else:
                elapsed = time.perf_counter() - started
                status = resp.status_code
                log.info(
                    "loki GET %s %s -> %d (%d bytes) in %.3fs (attempt %d)",
                    path,
                    summary,
                    status,
                    len(resp.content),
                    elapsed,
                    attempt + 1,
                )
                if status == 200:
                    return resp
                message = cap(redact(resp.text[:4096])) or resp.reason_phrase  # may echo our credentials
                if status == 400:
                    query = params.get("query", self.query)
                    raise LokiQueryError(f"Loki rejected the query {query!r}: {message}", status=status)
                if status in (401, 403):
                    raise LokiAuthError(f"Loki refused the credentials (HTTP {status}): {message}", status=status)
                if status not in _RETRY_STATUSES:
                    raise LokiError(f"Loki answered HTTP {status} for {path}: {message}", status=status)
                reason = f"HTTP {status}: {message}"
                if status in _RETRY_AFTER_STATUSES:
                    retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))

            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if attempt >= self.max_retries or delay > self.backoff_max:
                # Out of attempts, or the server asks for more patience than one poll should spend:
                # hand the delay to the caller (the scheduler retries the window later).
                raise LokiUnavailable(
                    f"Loki unavailable after {attempt + 1} attempt(s) at {path}: {reason}",
                    status=status,
                    delay=delay,
                ) from cause
            log.warning(
                "loki %s: retrying in %.2fs (attempt %d of %d)", reason, delay, attempt + 1, self.max_retries + 1
            )
            self._sleep(delay)
            attempt += 1
