"""Exact counts from Loki: page boundaries, saturated nanoseconds, late lines and bad labels (against the peer)."""

from __future__ import annotations

import collections
import random
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.core.model import LogEntry
from sentinel.sources.loki import LokiClient, build_http_client
from sentinel.sources.loki_json import exact_selector, split_selector
from tests.peers.loki import LokiPeer

BASE = 1_795_826_000_000_000_000
QUERY = '{namespace="shop"} |~ "(?i)error"'

Key = tuple[int, str, str, str]


def client(peer: LokiPeer, *, page_limit: int, query: str = QUERY) -> LokiClient:
    http = build_http_client(url=peer.url, timeout=10.0)
    return LokiClient(http, query=query, page_limit=page_limit, sleep=lambda _s: None, rng=random.Random(3))


def keyed(entries: list[LogEntry]) -> collections.Counter[Key]:
    return collections.Counter((e.ts_ns, e.labels["pod"], e.labels.get("container", ""), e.line) for e in entries)


@pytest.fixture(scope="module")
def shared_peer() -> Iterator[LokiPeer]:
    with LokiPeer() as peer:
        yield peer


bursts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6),  # timestamp slot (several bursts may share one)
        st.sampled_from([1, 2, 9, 10, 24, 37]),  # lines in the burst
        st.integers(min_value=1, max_value=6),  # streams it is spread over
        st.booleans(),  # the same text in every stream
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=bursts,
    page_limit=st.one_of(st.integers(min_value=1, max_value=40), st.sampled_from([100, 999, 5000])),
    seed=st.integers(min_value=0, max_value=10_000),
    unstable_ties=st.booleans(),
)
def test_every_page_boundary_counts_exactly(
    shared_peer: LokiPeer, plan: list[tuple[int, int, int, bool]], page_limit: int, seed: int, unstable_ties: bool
) -> None:
    """Bursts at shared timestamps, streams in any order, the same text in several streams: the exact multiset."""
    peer = shared_peer
    peer.clear()
    rnd = random.Random(seed)
    peer.tie_order = random.Random(seed) if unstable_ties else None
    want: collections.Counter[Key] = collections.Counter()
    per_stream: dict[tuple[str, str], list[tuple[int, str]]] = collections.defaultdict(list)
    for b, (slot, size, streams, same_text) in enumerate(plan):
        ts = BASE + slot * 1_000_000  # a shipper stamping at millisecond resolution
        for i in range(size):
            s = i % streams
            pod, container = f"api-{s}", "api" if s % 2 else "sidecar"
            lvl = "ERROR" if i % 3 else "level=fatal error"
            line = f"{lvl} burst {b} line {i // streams if same_text else i} failed"
            if (ts, line) in {(t, x) for t, x in per_stream[(pod, container)]}:
                continue  # Loki drops an exact duplicate in one stream
            per_stream[(pod, container)].append((ts, line))
            want[(ts, pod, container, line)] += 1
        per_stream[("noise", "api")].append((ts, f"INFO burst {b} fine"))
    items = list(per_stream.items())
    rnd.shuffle(items)  # streams pushed in any order
    for (pod, container), entries in items:
        rnd.shuffle(entries)
        peer.add_lines({"namespace": "shop", "pod": pod, "container": container}, entries)

    got = client(peer, page_limit=page_limit).fetch_all(BASE, BASE + 10 * 1_000_000)

    assert sum(want.values()) == len(got)
    assert keyed(got) == want


def burst(n: int, *, tag: str = "burst") -> list[tuple[int, str]]:
    return [(BASE, f"ERROR {tag} {i} failed") for i in range(n)]


def test_a_burst_beyond_loki_s_limit_in_one_stream_is_read_split_and_counted(shared_peer: LokiPeer) -> None:
    """5,200 lines at one nanosecond in one stream, 2,600 in each of two others, and ordinary lines around."""
    peer = shared_peer
    peer.clear()
    peer.add_lines({"namespace": "shop", "pod": "api-0", "container": "api"}, burst(5200))
    peer.add_lines({"namespace": "shop", "pod": "api-1", "container": "api"}, burst(2600))
    peer.add_lines({"namespace": "shop", "pod": "api-1", "container": "sidecar"}, burst(2600))
    # the millisecond before the burst holds lines of the saturated stream too: they are not part of it
    peer.add_lines({"namespace": "shop", "pod": "api-0", "container": "api"}, [(BASE - 5, "ERROR just before")])
    peer.add_lines(
        {"namespace": "shop", "pod": "web-0"}, [(BASE - 10, "ERROR web before"), (BASE + 7, "ERROR web after")]
    )
    # streams with lines at the burst that the query filters out: listed by series, never read one by one
    for p in range(5):
        peer.add_lines({"namespace": "shop", "pod": f"quiet-{p}"}, [(BASE, "INFO all fine")])
    loki = client(peer, page_limit=1000)

    got = loki.fetch_all(BASE - 1_000_000_000, BASE + 1_000_000_000)

    by_stream = collections.Counter((e.labels["pod"], e.labels.get("container", "")) for e in got)
    assert by_stream == {("api-0", "api"): 5001, ("api-1", "api"): 2600, ("api-1", "sidecar"): 2600, ("web-0", ""): 2}
    assert len(set(keyed(got))) == len(got)  # nothing twice
    stream = '{container="api", namespace="shop", pod="api-0", service_name="api"}'
    assert loki.report.unread == {stream: 200}
    assert loki.report.unresolved == 0
    # the split went through series and one query per stream; the count through one instant metric query
    assert len(peer.requests_to("/loki/api/v1/series")) == 1
    instant = peer.requests_to("/loki/api/v1/query")
    assert [r.param("time") for r in instant] == [str(BASE)]
    assert (instant[0].param("query") or "").startswith("sum by (container, namespace, pod, service_name) (")
    per_stream = [r.param("query") or "" for r in peer.requests_to("/loki/api/v1/query_range")]
    assert not any("quiet-" in q for q in per_stream)
    assert sum(1 for q in per_stream if 'pod="api-' in q) == 4  # 3 streams at ts, + the ms before api-0's burst


@pytest.mark.parametrize(
    "query, selector, rest",
    [
        pytest.param('{a="x"}', '{a="x"}', "", id="selector-only"),
        pytest.param(' {a="}", b=~"x|y"} |= "}"', '{a="}", b=~"x|y"}', ' |= "}"', id="brace-in-strings"),
        pytest.param('{a="q\\"}"} | json', '{a="q\\"}"}', " | json", id="escaped-quote"),
        pytest.param("{a=`}`} !~ `x`", "{a=`}`}", " !~ `x`", id="backticks"),
    ],
)
def test_split_selector_respects_strings(query: str, selector: str, rest: str) -> None:
    assert split_selector(query) == (selector, rest)


@pytest.mark.parametrize("query", [pytest.param('sum(count_over_time({a="x"}[1m]))', id="metric"),
                                   pytest.param('{a="x"', id="unclosed")])  # fmt: skip
def test_split_selector_refuses_what_is_not_a_log_query(query: str) -> None:
    with pytest.raises(ValueError, match="selector"):
        split_selector(query)


def test_exact_selector_quotes_values_and_excludes_other_labels() -> None:
    got = exact_selector({"pod": 'a"b', "ns": "x\\y"}, frozenset({"pod", "ns", "container"}))
    assert got == '{ns="x\\\\y", pod="a\\"b", container=""}'


def test_count_asks_one_instant_query_over_whole_milliseconds(shared_peer: LokiPeer) -> None:
    peer = shared_peer
    peer.clear()
    peer.add_lines({"namespace": "shop", "pod": "a"}, [(BASE, "ERROR first"), (BASE + 999, "ERROR x"),
                                                      (BASE + 2_000_000, "ERROR at end")])  # fmt: skip
    loki = client(peer, page_limit=10)
    assert loki.count(BASE, BASE + 2_000_000) == 2  # [start, end): the line at end is not in it
    assert loki.count(BASE, BASE + 2_000_001) is None  # not whole milliseconds: cannot be asked
    assert loki.count(BASE, BASE) is None
    assert [r.param("time") for r in peer.requests_to("/loki/api/v1/query")] == [str(BASE + 2_000_000 - 1)]


def test_a_pipeline_that_rewrites_stream_labels_still_reads_every_listed_stream() -> None:
    """Loki's grouped count names streams the series list does not (``| label_format pod=...``): read them all."""
    stream = {"namespace": "shop", "pod": "api-0"}
    values = [[str(BASE), f"ERROR {i}"] for i in range(5000)]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path, params = request.url.path, request.url.params
        asked.append(path)
        if path.endswith("/series"):
            return httpx.Response(200, json={"status": "success", "data": [stream]})
        if path.endswith("/query"):
            metric = {"namespace": "shop", "pod": "renamed"} if params["query"].startswith("sum by") else {}
            vector = [{"metric": metric, "value": [1795826000, "5003"]}]
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": vector}})
        body = values if int(params["start"]) == BASE else []
        result = [{"stream": stream, "values": body}] if body else []
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "streams", "result": result}})

    http = httpx.Client(base_url="http://loki.test", transport=httpx.MockTransport(handler))
    loki = LokiClient(http, query='{namespace="shop"} | label_format pod="renamed"', page_limit=100)

    got = loki.fetch_all(BASE, BASE + 10)

    assert len(got) == 5000
    assert loki.report.unread == {'{namespace="shop", pod="api-0"}': 3}
    assert asked.count("/loki/api/v1/query") == 2  # the grouped count, then the stream's own count


def test_two_saturated_nanoseconds_in_one_millisecond_are_reported_unresolved(shared_peer: LokiPeer) -> None:
    """The second burst cannot be told apart from the first by a count over one millisecond: said, not guessed."""
    peer = shared_peer
    peer.clear()
    labels = {"namespace": "shop", "pod": "api-0"}
    peer.add_lines(labels, [(BASE - 1, f"ERROR first {i}") for i in range(5001)])
    peer.add_lines(labels, [(BASE, f"ERROR second {i}") for i in range(5001)])
    loki = client(peer, page_limit=100)

    got = loki.fetch_all(BASE - 10, BASE + 10)

    assert len(got) == 10_000
    assert loki.report.unread == {'{namespace="shop", pod="api-0", service_name="unknown_service"}': 1}
    assert loki.report.unresolved == 1
