"""The Loki test peer answers the recorded requests in Loki 3.8's recorded shapes.

Each recording (``tests/fixtures/loki`` or ``/work/shared/fixtures/loki``: ``NAME.meta.json`` plus the body
bytes) is replayed against the peer, loaded with the same push as the recording, with the peer's clock
set to the moment of capture.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers.loki import LokiPeer, go_duration, parse_log_query

PUSH_CAPTURED_AT = 1795826645.1676166


def _fixture_dir() -> Path:
    candidates = [
        Path(os.environ.get("SENTINEL_LOKI_FIXTURES", "")),
        Path(__file__).resolve().parents[1] / "fixtures" / "loki",
        Path("/work/shared/fixtures/loki"),
    ]
    for path in candidates:
        if str(path) not in ("", ".") and (path / "push_ok.meta.json").is_file():
            return path
    raise RuntimeError("Loki recordings not found: copy them to tests/fixtures/loki or set SENTINEL_LOKI_FIXTURES")


FIXTURES = _fixture_dir()


def meta(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.meta.json").read_text())
    return doc


def recorded_body(name: str) -> bytes:
    return (FIXTURES / meta(name)["response"]["body_file"]).read_bytes()


def replay(peer: LokiPeer, name: str) -> httpx.Response:
    request = meta(name)["request"]
    url = request["url"].replace("http://127.0.0.1:3100", peer.url)
    body = request["body"].encode() if request["body"] is not None else None
    return httpx.request(request["method"], url, headers=request["headers"], content=body, timeout=10)


SHAPE_HEADERS = ("content-type", "vary", "x-content-type-options")


def assert_same_headers(resp: httpx.Response, name: str) -> None:
    recorded = {k.lower(): v for k, v in meta(name)["response"]["headers"].items()}
    for header in SHAPE_HEADERS:
        assert resp.headers.get(header) == recorded.get(header), f"{name}: header {header}"
    assert "server" not in resp.headers  # Loki sends none


def key_shape(value: Any) -> Any:
    """The keys of nested objects (values dropped): what "the same shape" means for ``stats``."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in value.items()}
    return type(value) is bool


@pytest.fixture(scope="module")
def loaded_peer() -> Iterator[LokiPeer]:
    with LokiPeer(clock=lambda: PUSH_CAPTURED_AT) as peer:
        assert replay(peer, "push_ok").status_code == 204
        yield peer


QUERY_RECORDINGS = [
    pytest.param(name, id=name)
    for name in (
        "query_range_errors_forward_limit3",
        "query_range_errors_backward_limit3",
        "query_range_errors_all_forward",
        "query_range_errors_backward_limit3_categorize_labels",
        "paginate_forward_page1_limit4",
        "paginate_forward_page2_start_eq_last_ts",
        "paginate_forward_page2_start_last_ts_plus_1ns",
        "paginate_backward_page1_limit4",
        "paginate_backward_page2_end_eq_oldest_ts",
        "paginate_backward_page2_end_oldest_ts_plus_1ns",
        "old_range_7d_ago_no_data",
    )
]


@pytest.mark.parametrize("name", QUERY_RECORDINGS)
def test_query_range_answers_like_loki(loaded_peer: LokiPeer, name: str) -> None:
    resp = replay(loaded_peer, name)
    want = json.loads(recorded_body(name))
    got = resp.json()

    assert resp.status_code == meta(name)["response"]["status"] == 200
    assert_same_headers(resp, name)
    assert list(got) == list(want) == ["status", "data"]
    assert list(got["data"]) == list(want["data"])
    assert got["data"]["result"] == want["data"]["result"]
    assert key_shape(got["data"]["stats"]) == key_shape(want["data"]["stats"])
    returned = sum(len(s["values"]) for s in got["data"]["result"])
    assert got["data"]["stats"]["summary"]["totalEntriesReturned"] == returned


ERROR_RECORDINGS = [
    pytest.param(name, id=name)
    for name in (
        "error_bad_direction",
        "error_bad_logql_empty_matchers",
        "error_bad_logql_parse",
        "error_bad_logql_regex",
        "error_end_before_start",
        "error_instant_log_query",
        "error_limit_above_max_entries",
        "error_metric_too_many_points",
        "error_range_too_long_31d",
        "error_start_year_2000",
    )
]


@pytest.mark.parametrize("name", ERROR_RECORDINGS)
def test_query_errors_are_loki_s_plain_text(loaded_peer: LokiPeer, name: str) -> None:
    resp = replay(loaded_peer, name)

    assert resp.status_code == meta(name)["response"]["status"] == 400
    assert_same_headers(resp, name)
    assert resp.content == recorded_body(name)


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n) for n in ("query_instant_metric", "query_range_metric_count_errors_by_pod")]
)
def test_metric_queries_answer_like_loki(loaded_peer: LokiPeer, name: str) -> None:
    resp = replay(loaded_peer, name)
    want = json.loads(recorded_body(name))
    got = resp.json()

    assert resp.status_code == meta(name)["response"]["status"] == 200
    assert_same_headers(resp, name)
    assert list(got) == list(want) == ["status", "data"]
    assert list(got["data"]) == list(want["data"])
    assert got["data"]["resultType"] == want["data"]["resultType"]
    assert got["data"]["result"] == want["data"]["result"]
    assert key_shape(got["data"]["stats"]) == key_shape(want["data"]["stats"])


def test_count_over_time_excludes_the_lower_bound_and_counts_one_millisecond(loaded_peer: LokiPeer) -> None:
    """``(t - range, t]``: a line exactly at ``t - range`` is not counted, one exactly at ``t`` is."""
    with LokiPeer() as peer:
        base = 1_795_826_000_000_000_000
        peer.add_lines({"namespace": "x", "pod": "a"}, [(base, "e1"), (base + 1, "e2"), (base + 1_000_000, "e3")])
        got = httpx.get(f"{peer.url}/loki/api/v1/query", params={
            "query": 'sum(count_over_time({namespace="x"}[1ms]))', "time": str(base + 1_000_000)}).json()  # fmt: skip
    assert got["data"]["result"] == [{"metric": {}, "value": [1795826000.001, "2"]}]


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n) for n in ("labels", "label_namespace_values", "series_demo", "buildinfo")]
)
def test_metadata_endpoints_answer_like_loki(loaded_peer: LokiPeer, name: str) -> None:
    resp = replay(loaded_peer, name)

    assert resp.status_code == meta(name)["response"]["status"] == 200
    assert_same_headers(resp, name)
    assert resp.json() == json.loads(recorded_body(name))


@pytest.mark.parametrize(
    "name, exact_body",
    [
        pytest.param("push_ok", True, id="ok"),
        pytest.param("push_error_too_old", True, id="too-old"),
        pytest.param("push_error_no_labels", True, id="no-labels"),
        pytest.param("push_error_malformed_json", False, id="malformed"),
    ],
)
def test_push_answers_like_loki(name: str, exact_body: bool) -> None:
    with LokiPeer(clock=lambda: meta(name)["captured_at_unix"]) as peer:
        resp = replay(peer, name)

    want_status = meta(name)["response"]["status"]
    assert resp.status_code == want_status
    assert_same_headers(resp, name)
    if exact_body:
        assert resp.content == recorded_body(name)
    else:
        assert resp.text.startswith("loghttp.PushRequest.Streams: []loghttp.LogProtoStream: ")
        assert "error found in #10 byte of" in resp.text
        assert resp.text.endswith("|...\n")


def test_push_no_labels_gets_unknown_service(loaded_peer: LokiPeer) -> None:
    with LokiPeer(clock=lambda: meta("push_error_no_labels")["captured_at_unix"]) as peer:
        assert replay(peer, "push_error_no_labels").status_code == 204
        series = httpx.get(f"{peer.url}/loki/api/v1/series", params={
            "match[]": '{service_name="unknown_service"}', "start": "1795826600000000000",
            "end": "1795826700000000000"}).json()  # fmt: skip
    assert series == {"status": "success", "data": [{"service_name": "unknown_service"}]}


def test_ready_replays_the_startup_sequence() -> None:
    names = ["ready_startup_1_503", "ready_startup_2_503", "ready_startup_3_503", "ready_startup_4_200"]
    with LokiPeer(ready_after=3) as peer:
        answers = [replay(peer, name) for name in names]

    for name, resp in zip(names, answers, strict=True):
        assert resp.status_code == meta(name)["response"]["status"]
        assert_same_headers(resp, name)
        assert resp.content == recorded_body(name)


@pytest.mark.parametrize(
    "query, lines",
    [
        pytest.param('{namespace="demo"}', 15, id="equality"),
        pytest.param('{namespace!="demo", app=~".+"}', 5, id="not-equal"),
        pytest.param('{namespace=~"demo|prod"}', 18, id="regex-is-anchored"),
        pytest.param('{namespace=~"dem"}', 0, id="regex-partial-does-not-match"),
        pytest.param('{namespace="demo", pod!~"checkout-.*"}', 5, id="not-regex"),
        pytest.param('{namespace="demo"} |= "ERROR" != "vault"', 5, id="chained-contains"),
        pytest.param('{namespace="demo"} |~ "(?i)fatal"', 2, id="case-insensitive-regex"),
        pytest.param('{namespace="demo"} !~ "(?i)(error|fatal|panic)"', 4, id="not-regex-line"),
        pytest.param('{namespace="demo"} |= `"payment`', 1, id="backtick-raw-string"),
    ],
)
def test_logql_subset_selects_what_loki_would(loaded_peer: LokiPeer, query: str, lines: int) -> None:
    resp = httpx.get(f"{loaded_peer.url}/loki/api/v1/query_range", params={
        "query": query, "start": "1795826344164316960", "end": "1795826648173001071", "limit": "1000"})  # fmt: skip

    assert resp.status_code == 200, resp.text
    assert sum(len(s["values"]) for s in resp.json()["data"]["result"]) == lines


def test_backward_is_the_default_direction_and_limit_defaults_to_100(loaded_peer: LokiPeer) -> None:
    resp = httpx.get(f"{loaded_peer.url}/loki/api/v1/query_range", params={
        "query": '{namespace="demo"}', "start": "1795826344164316960", "end": "1795826648173001071"})  # fmt: skip
    values = [v for s in resp.json()["data"]["result"] for v in s["values"]]
    per_stream_desc = all(
        [int(v[0]) for v in s["values"]] == sorted((int(v[0]) for v in s["values"]), reverse=True)
        for s in resp.json()["data"]["result"]
    )
    assert len(values) == 15
    assert per_stream_desc


@pytest.mark.parametrize(
    "params, message",
    [
        pytest.param({"limit": "0"}, "limit must be a positive value", id="limit-zero"),
        pytest.param({"query": '{app="x"} | json'}, "supports line filters only", id="pipeline-unsupported"),
        pytest.param({"query": 'rate({app="x"}[1m])'}, "count_over_time", id="other-metric-unsupported"),
        pytest.param(
            {"query": 'sum(count_over_time({app="x"}[1ns]))'}, 'not a valid duration string: "1ns"', id="ns-range"
        ),
        pytest.param({"query": '{app="x" |= "y"'}, "syntax error: unexpected |=, expecting , or }", id="unclosed"),
        pytest.param({"query": "{}"}, "at least one regexp or equality matcher", id="empty-selector"),
    ],
)
def test_peer_refuses_what_it_cannot_answer(loaded_peer: LokiPeer, params: dict[str, str], message: str) -> None:
    base = {"query": '{app="x"}', "start": "1795826344164316960", "end": "1795826648173001071"}
    resp = httpx.get(f"{loaded_peer.url}/loki/api/v1/query_range", params={**base, **params})

    assert resp.status_code == 400
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert message in resp.text


def test_loki_splits_one_pod_over_streams_by_detected_level(loaded_peer: LokiPeer) -> None:
    resp = httpx.get(f"{loaded_peer.url}/loki/api/v1/query_range", params={
        "query": '{pod="payments-5c6b9d7f4-xyz12"}', "start": "1795826344164316960",
        "end": "1795826648173001071", "direction": "forward"})  # fmt: skip
    levels = sorted(s["stream"]["detected_level"] for s in resp.json()["data"]["result"])
    assert levels == ["error", "fatal", "info"]


@pytest.mark.parametrize(
    "ns, text",
    [
        pytest.param(744 * 3600 * 10**9, "744h0m0s", id="hours"),
        pytest.param(849141848173 * 10**6, "235872h44m8.173s", id="fraction"),
        pytest.param(90 * 10**9, "1m30s", id="minutes"),
        pytest.param(5 * 10**9, "5s", id="seconds"),
    ],
)
def test_go_duration_formats_like_go(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_parsed_query_keeps_matchers_and_filters_in_order() -> None:
    q = parse_log_query('{namespace="demo", pod=~"web-.+"} |= "a" != "b" |~ "c" !~ "d"')
    assert [(m.name, m.op) for m in q.matchers] == [("namespace", "="), ("pod", "=~")]
    assert [f.op for f in q.filters] == ["|=", "!=", "|~", "!~"]
