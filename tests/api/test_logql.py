"""Issue 15, item 10: each group's LogQL query, run against the Loki peer, returns exactly its lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sentinel.api.app import create_app
from sentinel.bootstrap import build_runtime
from sentinel.core.logql import group_query, line_regex, pod_regex
from sentinel.engine.runtime import Runtime
from sentinel.sources.loki import LokiClient
from sentinel.store.memory import MemoryStore
from tests.api.conftest import serve
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000

STREAMS = [
    # (labels, lines): groups by workload and template; decoys share a namespace, workload or words
    (
        {"namespace": "shop", "pod": "checkout-7d4b9c8f6d-xk2lp", "container": "app"},
        "failed to reserve inventory: rpc error: code = Unavailable desc = {n} retries",
    ),
    (
        {"namespace": "shop", "pod": "checkout-7d4b9c8f6d-bz9qw", "container": "app"},
        "failed to reserve inventory: rpc error: code = Unavailable desc = {n} retries",
    ),
    (
        {"namespace": "shop", "pod": "checkout-api-5c8d7b9f4c-ttv2x", "container": "app"},
        "failed to reserve inventory: rpc error: code = Unavailable desc = {n} retries",
    ),
    (
        {"namespace": "shop", "pod": "checkout-7d4b9c8f6d-xk2lp", "container": "app"},
        'payment timed out after {n}ms for order "o-{n}"',
    ),
    (
        {"namespace": "staging", "pod": "checkout-7d4b9c8f6d-xk2lp", "container": "app"},
        "failed to reserve inventory: rpc error: code = Unavailable desc = {n} retries",
    ),
    (
        {"namespace": "data", "pod": "postgres-1", "container": "postgres"},
        "2026-11-28 10:46:24.{n} UTC [{n}] FATAL:  sorry, too many clients already",
    ),
    (
        {"namespace": "data", "pod": "postgres-0", "container": "postgres"},
        '{{"level":"error","msg":"connection \\"pool-{n}\\" exhausted after {n} waits"}}',
    ),
]


def _write_config(tmp: Path, peer: LokiPeer, extra: str = "") -> Path:
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"""
loki:
  url: {peer.url}
  lookback: 10m
  ingest_delay: 0s
kubernetes:
  in_cluster: false
  kubeconfig: {tmp / "no-kubeconfig"}
remediation:
  dry_run: true
rules_file: {ROOT / "config" / "rules.yaml"}
store:
  type: memory
{extra}
"""
    )
    return cfg


def _polled(tmp: Path, peer: LokiPeer, extra: str = "") -> Runtime:
    now = time.time_ns()
    for s, (labels, text) in enumerate(STREAMS):
        peer.add_lines(
            labels, [(now - (60 - i) * NS - s, "ERROR " + text.format(n=1000 + 7 * i + s)) for i in range(12)]
        )
    source = LokiClient(
        httpx.Client(base_url=peer.url, timeout=5.0), query='{namespace=~".+"} |= "ERROR"', sleep=lambda _s: None
    )
    rt = build_runtime(_write_config(tmp, peer, extra), source=source, store=MemoryStore())
    assert rt.poll_once().ok
    return rt


def _loki_lines(peer: LokiPeer, query: str) -> set[tuple[str, str]]:
    now = time.time_ns()
    r = httpx.get(
        f"{peer.url}/loki/api/v1/query_range",
        params={
            "query": query,
            "start": str(now - 3600 * NS),
            "end": str(now + NS),
            "limit": "5000",
            "direction": "forward",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {(s["stream"]["pod"], v[1]) for s in r.json()["data"]["result"] for v in s["values"]}


def test_each_groups_query_returns_exactly_its_lines(tmp_path: Path, loki_peer: LokiPeer) -> None:
    rt = _polled(tmp_path, loki_peer)
    groups = rt.store.all_groups()
    assert len(groups) == len(STREAMS) - 1  # the two checkout pods' inventory lines are one group
    for s in serve(create_app(rt), rt):
        for g in groups:
            detail = s.client.get(f"/api/errors/{g.id}").json()
            assert detail["explore_url"] is None  # no grafana.url configured
            got = _loki_lines(loki_peer, detail["logql"])
            assert len(got) == g.count, (detail["logql"], g.count, len(got))
            assert {pod for pod, _ in got} == set(g.pods)
            assert all(line.startswith("ERROR ") for _, line in got)
    rt.stop()


def test_the_explore_link_when_grafana_is_configured(tmp_path: Path, loki_peer: LokiPeer) -> None:
    extra = "grafana:\n  url: https://grafana.example.com/\n  loki_datasource_uid: P8E80F9AEF21F6940\n"
    rt = _polled(tmp_path, loki_peer, extra)
    g = rt.store.all_groups()[0]
    for s in serve(create_app(rt), rt):
        detail = s.client.get(f"/api/errors/{g.id}").json()
        url = urlsplit(detail["explore_url"])
        assert (url.scheme, url.netloc, url.path) == ("https", "grafana.example.com", "/explore")
        panes = json.loads(parse_qs(url.query)["panes"][0])
        (pane,) = panes.values()
        assert pane["datasource"] == "P8E80F9AEF21F6940"
        assert pane["queries"][0]["expr"] == detail["logql"]
        assert pane["queries"][0]["datasource"] == {"type": "loki", "uid": "P8E80F9AEF21F6940"}
    rt.stop()


@pytest.mark.parametrize(
    ("workload", "pods", "matches", "misses"),
    [
        pytest.param(
            "checkout",
            ["checkout-7d4b9c8f6d-xk2lp"],
            ["checkout-5c8d7b9f4c-bz9qw", "checkout"],
            ["checkout-api-5c8d7b9f4c-ttv2x"],
            id="deployment",
        ),
        pytest.param(
            "postgres", ["postgres-1"], ["postgres-0", "postgres-12"], ["postgres-exporter-0"], id="statefulset"
        ),
        pytest.param(
            "frontend",
            ["frontend-6b8d9f7c5-zz5bb"],
            ["frontend-6b8d9f7c5-zz5bb"],
            ["frontend-6b8d9f7c5-zz1ab"],
            id="label-workload",
        ),
    ],
)
def test_pod_regex(workload: str, pods: list[str], matches: list[str], misses: list[str]) -> None:
    import re

    rx = re.compile(pod_regex(workload, pods))
    assert all(rx.fullmatch(p) for p in matches) and not any(rx.fullmatch(p) for p in misses)


def test_line_regex_keeps_constant_parts_in_order() -> None:
    assert line_regex("a <*> b") == ""  # nothing long enough to say anything
    rx = line_regex('payment timed out after <*> for order "<*>"')
    assert rx == r'payment\s+timed\s+out\s+after.*for\s+order\s+\\?"'
    q = group_query(namespace="shop", workload="", container="", pods=[], template="boom happened")
    assert q == '{namespace="shop"} |~ "boom\\\\s+happened"'
