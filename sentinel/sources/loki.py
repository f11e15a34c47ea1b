"""Grafana Loki adapter: a paginated ``query_range`` reader over an injected ``httpx.Client``.

Loki's ``query_range`` treats ``start`` as inclusive and ``end`` as exclusive (nanoseconds), returns at
most ``limit`` entries (5000 at most) merged over every matching stream, and splits one pod's lines
over several streams (``detected_level``, structured metadata). :meth:`LokiClient.fetch` walks a
window forward page by page:

* the next page starts at the last timestamp of the previous page (inclusive), and the entries
  already yielded at exactly that timestamp are skipped (a multiset of ``(stream labels, line)``):
  nothing is lost when several lines share the boundary timestamp, nothing is counted twice;
* a full page made of one single timestamp cannot move the cursor, so that nanosecond is read on its
  own (``[ts, ts+1)``, ``limit=5000``); if even that is saturated, it is split by stream
  (``/loki/api/v1/series``, then one query per stream). A stream holding more lines at that
  nanosecond than Loki returns is counted with a metric query (``count_over_time`` over the last
  millisecond, less the lines of that millisecond before ``ts``): what could not be read is recorded
  in :attr:`LokiClient.report` as *unread occurrences* of that stream, never read twice, and the
  rest of the window is read as usual;
* label values that are not strings (``{"namespace": 123}``) are coerced to strings (numbers,
  booleans) or, for objects, lists and null, the stream is refused; both are counted in the report.

:meth:`LokiClient.count` counts what the query matches over a window with one instant metric
query: the engine compares it with what it read to find lines that reached Loki late.

Errors are translated here, at the edge: connection errors, 5xx and 429 are retried with exponential
backoff and full jitter (``Retry-After`` honoured), then raise :class:`LokiUnavailable`; 400 raises
:class:`LokiQueryError`, 401/403 :class:`LokiAuthError`, each with Loki's own message (capped).
Credentials never reach a log line, a ``repr`` or an exception message.

Reading Loki's JSON into entries (and the selectors, and the report) is pure and lives in
:mod:`sentinel.sources.loki_json`; this module is the HTTP half. It holds one concern, reading a
window from Loki over HTTP with no line lost or counted twice, and so stays one module past 500
lines: the paging, the saturated-nanosecond split and the retries share the client's state, and
it is the one module of the sources allowed to import ``httpx`` (an import-linter contract).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Final

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
from sentinel.sources.loki_json import (
    LABEL_NAME,
    FetchReport,
    coerce_labels,
    exact_selector,
    label_text,
    parse_streams,
    split_selector,
    ts_key,
)

log = logging.getLogger(__name__)

QUERY_RANGE_PATH: Final = "/loki/api/v1/query_range"
QUERY_PATH: Final = "/loki/api/v1/query"
SERIES_PATH: Final = "/loki/api/v1/series"
MS: Final = 1_000_000
READY_PATH: Final = "/ready"
MAX_LIMIT: Final = 5000
"""Loki's default ``max_entries_limit_per_query``."""

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_PROBE_LOOKBACK_NS: Final = 3600 * 1_000_000_000


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
        self.report = FetchReport()  # what the last fetch counted besides its lines

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
        """Yield every entry in ``[start_ns, end_ns)`` once, in time order, one list per page.

        What cannot be read as lines is counted in :attr:`report` (a fresh one per fetch).
        """
        report = self.report = FetchReport()
        cursor = start_ns
        # entries already yielded whose timestamp equals ``cursor`` (the next page repeats them)
        seen: Counter[tuple[frozenset[tuple[str, str]], str]] = Counter()
        while cursor < end_ns:
            page = self._query_page(cursor, end_ns, self.page_limit, "forward", report)
            full = len(page) >= self.page_limit
            if full and page[0].ts_ns == page[-1].ts_ns:
                # One timestamp fills the page: read that nanosecond alone, as much as Loki allows.
                ts = page[0].ts_ns
                page = self._query_page(ts, ts + 1, MAX_LIMIT, "forward", report)
                if len(page) >= MAX_LIMIT:
                    page = self._read_saturated(ts, report)
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

    def count(self, start_ns: int, end_ns: int) -> int | None:
        """How many lines the query matches in ``[start_ns, end_ns)`` now, by one instant metric query.

        None when the window is empty or not whole milliseconds (a LogQL range has no smaller unit).
        """
        length = end_ns - start_ns
        if length <= 0 or length % MS:
            return None
        # count_over_time at t covers (t - range, t]: at end - 1 that is exactly [start, end).
        return self._instant_sum(f"sum(count_over_time({self.query} [{length // MS}ms]))", end_ns - 1)

    def probe(self) -> str:
        """``/ready`` plus one ``limit=1`` query over the last hour; a one-line verdict or an error."""
        ok, why = self.ready()
        if not ok:
            raise LokiUnavailable(f"Loki is not ready: {why}", delay=self.backoff_base)
        end = time.time_ns()
        page = self._query_page(end - _PROBE_LOOKBACK_NS, end, 1, "backward", None)
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

    def _read_saturated(self, ts: int, report: FetchReport) -> list[LogEntry]:
        """Every line Loki returns at ``ts``, one query per stream; what it cannot return goes to ``report``."""
        try:
            selector, pipeline = split_selector(self.query)
        except ValueError as err:
            raise LokiError(
                f"{MAX_LIMIT} or more lines share the timestamp {ts} ns and the query {self.query!r} cannot be "
                f"split by stream ({err}); narrow the query"
            ) from err
        # Streams of the millisecond up to ts: the window the count below covers, so both name the same streams.
        streams = self._series(selector, ts - MS + 1, ts + 1)
        if not streams:
            raise LokiError(
                f"{MAX_LIMIT} or more lines share the timestamp {ts} ns but Loki lists no stream for "
                f"{selector!r} there: they cannot be read without loss"
            )
        names = frozenset(k for labels in streams for k in labels)
        # One metric query tells which streams have matching lines in the millisecond up to ts (and
        # how many): only those are read (Loki's series may list many more streams than hold lines).
        in_ms: dict[str, int] | None = None
        if all(LABEL_NAME.fullmatch(n) for n in names):
            by = ", ".join(sorted(names))
            in_ms = self._instant_vector(f"sum by ({by}) (count_over_time({self.query} [1ms]))", ts)
            if not in_ms.keys() <= {label_text(labels) for labels in streams}:
                in_ms = None  # the pipeline rewrote stream labels: read every listed stream instead
        entries: list[LogEntry] = []
        for labels in streams:
            stream = label_text(labels)
            if in_ms is not None and not in_ms.get(stream):
                continue
            query = exact_selector(labels, names) + pipeline
            got = self._query_page(ts, ts + 1, MAX_LIMIT, "forward", report, query=query)
            entries.extend(got)
            if len(got) < MAX_LIMIT:
                continue
            total = self._lines_at(query, ts, None if in_ms is None else in_ms[stream])
            if total is None:
                report.unresolved += 1
                log.warning(
                    "loki %s: %d or more lines at %d ns, and so many in the millisecond before that they cannot "
                    "be counted exactly; %d read",
                    stream,
                    MAX_LIMIT,
                    ts,
                    len(got),
                )
            elif total > len(got):
                report.unread[stream] = report.unread.get(stream, 0) + total - len(got)
                log.warning(
                    "loki %s: %d lines at %d ns, Loki returns at most %d per query: %d read, %d counted as unread",
                    stream,
                    total,
                    ts,
                    MAX_LIMIT,
                    len(got),
                    total - len(got),
                )
        entries.sort(key=ts_key)
        return entries

    def _lines_at(self, query: str, ts: int, in_ms: int | None = None) -> int | None:
        """Lines of ``query`` at exactly ``ts``: a count over ``(ts - 1ms, ts]`` (``in_ms`` when already
        known) less those before ``ts``. None when the millisecond before ``ts`` itself holds more
        lines than one query returns.
        """
        if in_ms is None:
            in_ms = self._instant_sum(f"sum(count_over_time({query} [1ms]))", ts)
        before = self._query_page(ts - MS + 1, ts, MAX_LIMIT, "forward", None, query=query)
        if len(before) >= MAX_LIMIT:
            return None
        return in_ms - len(before)

    def _series(self, selector: str, start_ns: int, end_ns: int) -> list[dict[str, str]]:
        resp = self._get(SERIES_PATH, {"match[]": selector, "start": str(start_ns), "end": str(end_ns)})
        try:
            doc = json.loads(resp.content)
            data = doc["data"]
            if doc["status"] != "success" or not isinstance(data, list):
                raise TypeError("data")
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise LokiError(f"Loki's series answer is not a list of label sets: {cap(resp.content[:200])}") from err
        out: list[dict[str, str]] = []
        for raw in data:
            labels = coerce_labels(raw, None)
            if labels:
                out.append(labels)
        return out

    def _instant_sum(self, query: str, at_ns: int) -> int:
        """The sum of an instant vector query's values (0 when it has no series)."""
        return sum(self._instant_vector(query, at_ns).values())

    def _instant_vector(self, query: str, at_ns: int) -> dict[str, int]:
        """An instant vector query's series (labels in Loki's text form) and their integer values."""
        resp = self._get(QUERY_PATH, {"query": query, "time": str(at_ns)})
        try:
            doc = json.loads(resp.content)
            data = doc["data"]
            if doc["status"] != "success" or data["resultType"] != "vector":
                raise TypeError("resultType")
            out: dict[str, int] = {}
            for r in data["result"]:
                metric = coerce_labels(r["metric"], None)
                if metric is None:
                    raise TypeError("metric")
                key = label_text(metric)
                out[key] = out.get(key, 0) + int(float(r["value"][1]))
            return out
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError) as err:
            raise LokiError(
                f"Loki's answer to the metric query {query!r} is not an instant vector: {cap(resp.content[:200])}"
            ) from err

    def _query_page(
        self,
        start_ns: int,
        end_ns: int,
        limit: int,
        direction: str,
        report: FetchReport | None,
        *,
        query: str | None = None,
    ) -> list[LogEntry]:
        params = {
            "query": query or self.query,
            "start": str(start_ns),
            "end": str(end_ns),
            "limit": str(limit),
            "direction": direction,
        }
        resp = self._get(QUERY_RANGE_PATH, params)
        return parse_streams(resp.content, report)

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
                    shown = params.get("query") or params.get("match[]") or self.query
                    raise LokiQueryError(f"Loki rejected the query {shown!r}: {message}", status=status)
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
