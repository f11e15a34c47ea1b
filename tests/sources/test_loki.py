"""The Loki adapter against the Loki test peer, for real over 127.0.0.1."""

from __future__ import annotations

import collections
import email.utils
import json
import logging
import random
import time
from collections.abc import Iterator

import httpx
import pytest

from sentinel.core.model import LogEntry
from sentinel.errors import ConfigError, LokiAuthError, LokiError, LokiQueryError, LokiUnavailable
from sentinel.sources.loki import LokiClient, build_http_client
from sentinel.sources.loki_json import parse_streams
from tests.peers.loki import QUERY_RANGE, READY, LokiPeer

BASE = 1_795_826_000_000_000_000
SECRET = "pa55-Wörd-s3cret"
TOKEN = "tok-9f8e7d-s3cret"


class RecordingSleep:
    """A sleep that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def peer() -> Iterator[LokiPeer]:
    with LokiPeer() as p:
        yield p


def client(peer: LokiPeer, query: str = '{namespace="demo"}', **kw: object) -> LokiClient:
    http = build_http_client(url=peer.url, timeout=float(kw.pop("timeout", 5.0)))  # type: ignore[arg-type]
    kw.setdefault("sleep", RecordingSleep())
    kw.setdefault("rng", random.Random(7))
    return LokiClient(http, query=query, **kw)  # type: ignore[arg-type]


def load_crowded(peer: LokiPeer, n: int) -> collections.Counter[tuple[int, str, str]]:
    """``n`` lines over 3 pods, 5 lines per timestamp (across and within pods), errors and infos mixed."""
    per_pod: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    expected: collections.Counter[tuple[int, str, str]] = collections.Counter()
    for i in range(n):
        pod = f"web-{i % 3}"
        ts = BASE + (i // 5) * 1000
        line = f"{'ERROR' if i % 4 == 0 else 'INFO'} request {i} failed" if i % 2 else "ERROR same text"
        per_pod[pod].append((ts, line))
        expected[(ts, pod, line)] += 1
    for pod, entries in per_pod.items():
        peer.add_lines({"namespace": "demo", "pod": pod, "app": "web"}, entries)
    # Loki keeps one copy of an exact duplicate in one stream: the peer does the same
    return collections.Counter(dict.fromkeys(expected, 1))


def seen(entries: list[LogEntry]) -> collections.Counter[tuple[int, str, str]]:
    return collections.Counter((e.ts_ns, e.labels["pod"], e.line) for e in entries)


@pytest.mark.parametrize(
    "page_limit",
    [
        pytest.param(7, id="limit-7"),
        pytest.param(13, id="limit-13"),
        pytest.param(1000, id="limit-1000"),
        pytest.param(5000, id="limit-5000"),
    ],  # fmt: skip
)
def test_pagination_loses_and_repeats_nothing(peer: LokiPeer, page_limit: int) -> None:
    expected = load_crowded(peer, 10_500)
    loki = client(peer, page_limit=page_limit)

    pages = list(loki.fetch(BASE, BASE + 10**15))
    entries = [e for page in pages for e in page]

    assert sum(expected.values()) > 7000
    assert len(entries) == sum(expected.values())
    assert seen(entries) == expected
    assert all(a.ts_ns <= b.ts_ns for a, b in zip(entries, entries[1:], strict=False))
    assert all(len(page) <= page_limit for page in pages)
    assert len(pages) >= sum(expected.values()) // page_limit


def test_pagination_with_a_line_filter_counts_exactly(peer: LokiPeer) -> None:
    expected = load_crowded(peer, 10_500)
    want = collections.Counter({k: v for k, v in expected.items() if "ERROR" in k[2]})
    loki = client(peer, '{namespace="demo"} |= "ERROR"', page_limit=7)

    got = seen(loki.fetch_all(BASE, BASE + 10**15))

    assert got == want


def test_a_page_of_one_timestamp_is_read_as_one_nanosecond(peer: LokiPeer) -> None:
    ts = BASE + 5
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(ts, f"ERROR boom {i}") for i in range(40)])
    peer.add_lines({"namespace": "demo", "pod": "b"}, [(ts, f"ERROR boom {i}") for i in range(10)])
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(ts - 1, "before"), (ts + 1, "after")])
    loki = client(peer, page_limit=7)

    entries = loki.fetch_all(BASE, BASE + 100)

    assert len(entries) == 52
    assert len(set(seen(entries))) == 52
    assert [e.line for e in entries][0] == "before" and entries[-1].line == "after"
    one_ns = [r for r in peer.requests_to(QUERY_RANGE) if r.param("end") == str(ts + 1)]
    assert [r.param("limit") for r in one_ns] == ["5000"]


def test_more_lines_in_one_nanosecond_than_loki_returns_are_counted_as_unread(peer: LokiPeer) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE, f"line {i}") for i in range(5001)])
    loki = client(peer, page_limit=10)

    assert len(loki.fetch_all(BASE, BASE + 10)) == 5000
    assert loki.report.unread == {'{namespace="demo", pod="a", service_name="unknown_service"}': 1}


def test_a_saturated_nanosecond_of_a_query_without_selector_fails_loudly(peer: LokiPeer) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE, f"line {i}") for i in range(5001)])
    loki = client(peer, page_limit=10)
    loki.query = ' sum(count_over_time({namespace="demo"}[1m]))'  # not a log query: cannot be split by stream

    with pytest.raises(LokiError, match=r"share the timestamp 1795826000000000000.*cannot be split by stream"):
        loki._read_saturated(BASE, loki.report)


def test_window_start_is_inclusive_and_end_exclusive(peer: LokiPeer) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE - 1, "before"), (BASE, "first"),
                                                       (BASE + 9, "last"), (BASE + 10, "at-end")])  # fmt: skip
    loki = client(peer)

    assert [e.line for e in loki.fetch_all(BASE, BASE + 10)] == ["first", "last"]
    assert loki.fetch_all(BASE + 10, BASE + 10) == []  # an empty window asks nothing


def test_streams_of_one_pod_are_merged_in_time_order(peer: LokiPeer) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE + i, ("ERROR x" if i % 2 else "INFO y"))
                                                       for i in range(10)])  # fmt: skip
    loki = client(peer)

    entries = loki.fetch_all(BASE, BASE + 10)

    assert [e.ts_ns for e in entries] == [BASE + i for i in range(10)]
    assert {e.labels["detected_level"] for e in entries} == {"error", "info"}
    assert all(e.labels["service_name"] == "unknown_service" for e in entries)


@pytest.mark.parametrize(
    "status, retry_after, expected_delay",
    [
        pytest.param(503, "2", 2.0, id="503-seconds"),
        pytest.param(429, "1", 1.0, id="429-seconds"),
        pytest.param(429, "0", 0.0, id="429-zero"),
    ],
)
def test_retry_after_is_honoured(peer: LokiPeer, status: int, retry_after: str, expected_delay: float) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE, "ERROR x")])
    peer.fail_next(status, 2, retry_after=retry_after)
    sleep = RecordingSleep()
    loki = client(peer, sleep=sleep)

    entries = loki.fetch_all(BASE, BASE + 10)

    assert [e.line for e in entries] == ["ERROR x"]
    assert sleep.delays == [expected_delay, expected_delay]
    assert len(peer.requests_to(QUERY_RANGE)) == 3


def test_retry_after_as_http_date_is_honoured(peer: LokiPeer) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE, "ERROR x")])
    peer.fail_next(503, retry_after=email.utils.formatdate(time.time() + 4, usegmt=True))
    sleep = RecordingSleep()

    assert len(client(peer, sleep=sleep).fetch_all(BASE, BASE + 10)) == 1
    assert len(sleep.delays) == 1 and 2.0 < sleep.delays[0] <= 4.0


def test_backoff_without_retry_after_is_exponential_with_full_jitter(peer: LokiPeer) -> None:
    peer.fail_next(502, 4)
    sleep = RecordingSleep()
    loki = client(peer, sleep=sleep, backoff_base=0.5, backoff_max=3.0)

    assert loki.fetch_all(BASE, BASE + 10) == []
    caps = [0.5, 1.0, 2.0, 3.0]
    assert len(sleep.delays) == 4
    assert all(0.0 <= d <= cap for d, cap in zip(sleep.delays, caps, strict=True))
    assert len(set(sleep.delays)) == 4  # jittered, not fixed


def test_retries_run_out_into_lokiunavailable_with_a_delay(peer: LokiPeer) -> None:
    peer.fail_next(503, 10, body="Ingester not ready", retry_after="3")
    sleep = RecordingSleep()
    loki = client(peer, sleep=sleep, max_retries=2)

    with pytest.raises(LokiUnavailable) as caught:
        loki.fetch_all(BASE, BASE + 10)

    assert caught.value.delay == 3.0 and caught.value.status == 503
    assert "Ingester not ready" in str(caught.value) and "3 attempt(s)" in str(caught.value)
    assert sleep.delays == [3.0, 3.0]
    assert len(peer.requests_to(QUERY_RANGE)) == 3


def test_a_retry_after_longer_than_backoff_max_is_handed_to_the_caller(peer: LokiPeer) -> None:
    peer.fail_next(429, retry_after="120")
    sleep = RecordingSleep()

    with pytest.raises(LokiUnavailable) as caught:
        client(peer, sleep=sleep, backoff_max=30.0).fetch_all(BASE, BASE + 10)

    assert caught.value.delay == 120.0
    assert sleep.delays == []


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda p: p.reset_next(2), id="connection-reset"),
        pytest.param(lambda p: p.delay_next(0.6, 1), id="read-timeout"),
    ],
)
def test_transport_failures_are_retried(peer: LokiPeer, inject: object) -> None:
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE, "ERROR x")])
    inject(peer)  # type: ignore[operator]
    sleep = RecordingSleep()

    entries = client(peer, sleep=sleep, timeout=0.3).fetch_all(BASE, BASE + 10)

    assert [e.line for e in entries] == ["ERROR x"]
    assert len(sleep.delays) >= 1


def test_persistent_resets_become_lokiunavailable_from_the_httpx_error(peer: LokiPeer) -> None:
    peer.reset_next(10)

    with pytest.raises(LokiUnavailable) as caught:
        client(peer, max_retries=1).fetch_all(BASE, BASE + 10)

    assert isinstance(caught.value.__cause__, httpx.TransportError)
    assert caught.value.status is None


def test_an_unreachable_loki_is_unavailable() -> None:
    with LokiPeer() as gone:
        url = gone.url
    loki = LokiClient(build_http_client(url=url, timeout=1.0), query='{a="b"}', max_retries=1,
                      sleep=RecordingSleep())  # fmt: skip

    with pytest.raises(LokiUnavailable, match="ConnectError"):
        loki.fetch_all(BASE, BASE + 10)
    assert loki.ready()[0] is False


@pytest.mark.parametrize(
    "query, message",
    [
        pytest.param('{namespace="demo"} |~ "(?i)(error|fatal"', "error parsing regexp: missing closing )",
                     id="bad-regex"),
        pytest.param('{namespace=~".*"}', "queries require at least one regexp or equality matcher", id="empty"),
        pytest.param('{namespace="demo"} |~ (error', "syntax error: unexpected (, expecting STRING", id="syntax"),
    ],
)  # fmt: skip
def test_400_surfaces_loki_s_message_and_the_query(peer: LokiPeer, query: str, message: str) -> None:
    sleep = RecordingSleep()

    with pytest.raises(LokiQueryError) as caught:
        client(peer, query, sleep=sleep).fetch_all(BASE, BASE + 10)

    assert message in str(caught.value)
    assert repr(query) in str(caught.value)
    assert caught.value.status == 400 and sleep.delays == []


@pytest.mark.parametrize(
    "status, body",
    [pytest.param(401, "no org id", id="401"), pytest.param(403, "tenant forbidden", id="403")],
)
def test_auth_refusals_are_permanent(peer: LokiPeer, status: int, body: str) -> None:
    peer.fail_next(status, body=body)
    sleep = RecordingSleep()

    with pytest.raises(LokiAuthError, match=body) as caught:
        client(peer, sleep=sleep).fetch_all(BASE, BASE + 10)

    assert caught.value.status == status and sleep.delays == []


def test_other_4xx_is_a_permanent_loki_error(peer: LokiPeer) -> None:
    loki = LokiClient(build_http_client(url=peer.url + "/wrong-prefix"), query='{a="b"}', sleep=RecordingSleep())

    with pytest.raises(LokiError, match="HTTP 404") as caught:
        loki.fetch_all(BASE, BASE + 10)
    assert not isinstance(caught.value, LokiUnavailable)


@pytest.mark.parametrize(
    "body, problem",
    [
        pytest.param(b"<html>bad gateway</html>", "not JSON", id="html"),
        pytest.param(b'{"status":"success","data":', "not JSON", id="truncated"),
        pytest.param(b'{"status":"error","data":{}}', "status is 'error'", id="status"),
        pytest.param(b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "resultType is 'matrix'",
                     id="metric"),
        pytest.param(b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":'
                     b'[["12x","l"]]}]}}', "data.result[0].values[0][0]", id="bad-timestamp"),
        pytest.param(b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":'
                     b'[["12",5]]}]}}', "data.result[0].values[0][1] is int", id="line-not-string"),
        pytest.param(b'{"status":"success","data":{"resultType":"streams","result":[{"values":[]}]}}',
                     "data.result[0].stream", id="no-labels"),
        pytest.param(b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":'
                     b'[["12","l",{}],["13"]]}]}}', "data.result[0].values[1] is not a [timestamp, line] pair",
                     id="short-value"),
        pytest.param(b'{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":'
                     b'[["12","l"]]},{"stream":{},"values":[["13","m"],["14",null]]}]}}',
                     "data.result[1].values[1][1] is NoneType", id="second-stream-line-null"),
    ],
)  # fmt: skip
def test_malformed_answers_name_what_was_wrong(peer: LokiPeer, body: bytes, problem: str) -> None:
    peer.malformed_next(body)

    with pytest.raises(LokiError, match=problem.replace("[", r"\[").replace("]", r"\]").replace(")", r"\)")):
        client(peer).fetch_all(BASE, BASE + 10)


@pytest.mark.parametrize(
    "kwargs, require, header",
    [
        pytest.param({"tenant_id": "team-a"}, "tenant", ("x-scope-orgid", "team-a"), id="tenant"),
        pytest.param({"username": "sentinel", "password": SECRET}, "basic", None, id="basic"),
        pytest.param({"bearer_token": TOKEN}, "bearer", ("authorization", f"Bearer {TOKEN}"), id="bearer"),
    ],
)
def test_tenant_and_credentials_reach_loki(
    peer: LokiPeer, kwargs: dict[str, str], require: str, header: tuple[str, str] | None
) -> None:
    {"tenant": peer.require_tenant, "basic": lambda: peer.require_basic("sentinel", SECRET),
     "bearer": lambda: peer.require_bearer(TOKEN)}[require]()  # fmt: skip
    peer.add_lines({"namespace": "demo", "pod": "a"}, [(BASE, "ERROR x")])
    loki = LokiClient(build_http_client(url=peer.url, **kwargs), query='{namespace="demo"}')

    assert len(loki.fetch_all(BASE, BASE + 10)) == 1
    sent = peer.requests_to(QUERY_RANGE)[-1].headers
    if header is not None:
        assert sent[header[0]] == header[1]
    else:
        assert sent["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "kwargs, require",
    [
        pytest.param({"username": "sentinel", "password": "wrong-" + SECRET}, "basic", id="basic"),
        pytest.param({"bearer_token": "wrong-" + TOKEN}, "bearer", id="bearer"),
    ],
)
def test_secrets_never_reach_reprs_logs_or_errors(
    peer: LokiPeer, caplog: pytest.LogCaptureFixture, kwargs: dict[str, str], require: str
) -> None:
    if require == "basic":
        peer.require_basic("sentinel", SECRET)
    else:
        peer.require_bearer(TOKEN)
    caplog.set_level(logging.DEBUG)
    http = build_http_client(url=peer.url, tenant_id="t", **kwargs)
    loki = LokiClient(http, query='{namespace="demo"}', sleep=RecordingSleep())

    with pytest.raises(LokiAuthError) as caught:
        loki.fetch_all(BASE, BASE + 10)
    loki.ready()

    texts = [repr(loki), repr(http), repr(http.auth), repr(http.headers), str(caught.value), caplog.text]
    assert "sentinel.sources.loki" in caplog.text  # the adapter did log its requests
    for secret in (SECRET, TOKEN):
        assert all(secret not in text for text in texts)


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        pytest.param({"bearer_token": "t", "username": "u", "password": "p"}, "not both", id="both-auths"),
        pytest.param({"url": "http://u:p@loki:3100"}, "must not carry credentials", id="userinfo"),
        pytest.param({"url": "ftp://loki"}, "http", id="scheme"),
        pytest.param({"ca_file": "/nonexistent/ca.pem"}, "cannot be loaded", id="ca-file"),
    ],
)
def test_build_http_client_refuses_bad_settings(kwargs: dict[str, str], problem: str) -> None:
    settings = {"url": "http://loki:3100", **kwargs}
    with pytest.raises(ConfigError, match=problem) as caught:
        build_http_client(**settings)  # type: ignore[arg-type]
    assert "p@" not in str(caught.value)


def test_ready_reports_startup_then_ready() -> None:
    with LokiPeer(ready_after=2) as peer:
        loki = client(peer)
        answers = [loki.ready() for _ in range(3)]

    assert answers[0] == (False, "HTTP 503: Some services are not Running:\nStarting: 5\nRunning: 14")
    assert answers[1] == (False, "HTTP 503: Ingester not ready: waiting for 15s after being ready")
    assert answers[2] == (True, "ready")


def test_probe_checks_ready_and_runs_one_small_query() -> None:
    with LokiPeer(ready_after=1) as peer:
        peer.add_lines({"namespace": "demo", "pod": "a"}, [(time.time_ns() - 10**9, "ERROR x")])
        loki = client(peer)
        with pytest.raises(LokiUnavailable, match="not ready"):
            loki.probe()
        verdict = loki.probe()
        probe_query = peer.requests_to(QUERY_RANGE)[-1]

    assert "Loki ready" in verdict and "matched lines" in verdict
    assert probe_query.param("limit") == "1"
    assert len(peer.requests_to(READY)) == 2


def test_page_limit_outside_loki_s_range_is_refused(peer: LokiPeer) -> None:
    with pytest.raises(ConfigError, match="page_limit"):
        client(peer, page_limit=5001)


def test_parsing_a_large_body_merges_streams_in_time_order(peer: LokiPeer) -> None:
    """Throughput is measured by `make bench`; here only correctness on a 100k-line body."""
    n = 100_000
    streams = [
        {"stream": {"namespace": "demo", "pod": f"web-{p}", "detected_level": "error"},
         "values": [[str(BASE + i * 10 + p), f"ERROR request {i} failed: dial tcp 10.0.0.{p}:5432"]
                    for i in range(n // 4)]}
        for p in range(4)
    ]  # fmt: skip
    body = json.dumps({"status": "success", "data": {"resultType": "streams", "result": streams}}).encode()

    entries = parse_streams(body)

    assert len(entries) == n
    assert entries[0].ts_ns == BASE and entries[1].labels["pod"] == "web-1"
    assert all(a.ts_ns <= b.ts_ns for a, b in zip(entries, entries[1:], strict=False))


@pytest.mark.parametrize(
    "stamp, line, labels, expected",
    [
        pytest.param('"12"', '"l"', '{"a":"b"}', (12, "l", {"a": "b"}), id="strings"),
        # numbers where Loki writes strings: json reads them (orjson reads 2**64 and more as a float)
        pytest.param("12", '"l"', '{"a":"b"}', (12, "l", {"a": "b"}), id="number-stamp"),
        pytest.param("123456789012345678901234567890", '"l"', "{}", (123456789012345678901234567890, "l", {}),
                     id="stamp-beyond-64-bits"),
        pytest.param('"12"', '"l"', '{"a":1,"b":true}', (12, "l", {"a": "1", "b": "true"}), id="coerced-labels"),
        pytest.param('"12"', '"NaN \\ud800"', '{"a":"b"}', (12, "NaN \ud800", {"a": "b"}), id="lone-surrogate"),
    ],
)  # fmt: skip
def test_entries_are_exact_whichever_decoder_reads_the_body(
    stamp: str, line: str, labels: str, expected: tuple[int, str, dict[str, str]]
) -> None:
    body = f'{{"status":"success","data":{{"resultType":"streams","result":[{{"stream":{labels},"values":[[{stamp},{line}]]}}]}}}}'

    [entry] = parse_streams(body.encode())

    assert (entry.ts_ns, entry.line, dict(entry.labels)) == expected
    assert type(entry) is LogEntry and type(entry.ts_ns) is int
