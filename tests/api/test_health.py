"""``/health``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from sentinel.api.app import create_app
from sentinel.sources.loki import LokiClient
from tests.api.conftest import Served, build_runtime, serve
from tests.peers.loki import LokiPeer

ROOT = Path(__file__).resolve().parents[2]


def test_health_is_alive(api: Served) -> None:
    r = api.client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "alive" and r.json()["uptime"] >= 0


def test_ready_after_a_successful_poll(api: Served) -> None:
    r = api.client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {
        "ready": True,
        "checks": {
            "config": "ok",
            "rules": "ok",
            "store": "ok",
            "remediation": "ok",
            "notifications": "ok",
            "store_load": "ok",
            "pod_status": "off: no cluster, or kubernetes.pod_status.enabled is false",
        },
        "failing": {},
        "notices": [],
    }


def test_a_halted_remediator_shows_in_ready_and_metrics(fresh: Served) -> None:
    """Shown, not failing: the console must stay reachable through the Service to reset it."""
    rt = fresh.runtime
    assert rt.poll_once().ok
    assert _metrics(fresh)["kube_sentinel_remediator_halted"] == [({}, 0.0)]
    state = rt.remediator.state()
    state.halt("a dry run of restart-pod (record r1) changed the cluster: Pod demo/web-1 is gone", now=rt.clock())
    rt.store.put_state("safety", state.to_dict())
    r = fresh.client.get("/ready")
    assert r.status_code == 200 and r.json()["failing"] == {}
    assert r.json()["checks"]["remediation"].startswith("halted: a dry run of restart-pod")
    assert "resets breaker 'remediator'" in r.json()["checks"]["remediation"]
    assert _metrics(fresh)["kube_sentinel_remediator_halted"] == [({}, 1.0)]
    assert rt.remediator.reset_breaker("remediator", by="test")
    assert fresh.client.get("/ready").json()["checks"]["remediation"] == "ok"
    assert _metrics(fresh)["kube_sentinel_remediator_halted"] == [({}, 0.0)]


def test_ready_before_the_first_poll_and_the_poll_state_says_waiting(unpolled: Served) -> None:
    r = unpolled.client.get("/ready")
    assert r.status_code == 200 and r.json()["failing"] == {}  # readiness is config, rules and store
    poll = unpolled.client.get("/api/stats").json()["poll"]
    assert poll["ok"] is False and poll["state"] == "waiting"
    assert _metrics(unpolled)["kube_sentinel_poll_healthy"] == [({}, 0.0)]
    assert unpolled.runtime.poll_once().ok
    poll = unpolled.client.get("/api/stats").json()["poll"]
    assert poll["ok"] is True and poll["state"] == "ok"
    assert _metrics(unpolled)["kube_sentinel_poll_healthy"] == [({}, 1.0)]


def test_loki_down_keeps_ready_and_shows_in_stats_and_metrics(tmp_path: Path, loki_peer: LokiPeer) -> None:
    """Loki answers 503 to every query: /ready stays 200; /api/stats and /metrics say polls fail."""
    rt = build_runtime(tmp_path)
    rt.source = LokiClient(httpx.Client(base_url=loki_peer.url), query='{namespace=~".+"}', sleep=lambda _s: None)
    loki_peer.fail_next(503, times=50, body="Ingester not ready")
    for served in serve(create_app(rt), rt):
        assert not rt.poll_once().ok and not rt.poll_once().ok
        r = served.client.get("/ready")
        assert r.status_code == 200 and r.json()["ready"] is True
        poll = served.client.get("/api/stats").json()["poll"]
        assert poll["ok"] is False and poll["state"] == "failing" and poll["consecutive_errors"] == 2
        assert "503" in poll["detail"]
        m = _metrics(served)
        assert m["kube_sentinel_poll_healthy"] == [({}, 0.0)]
        assert ({"state": "failing"}, 1.0) in m["kube_sentinel_poll_state"]
        assert ({"state": "ok"}, 0.0) in m["kube_sentinel_poll_state"]
        assert m["kube_sentinel_ready"] == [({}, 1.0)]


def test_the_alert_rule_example_uses_metrics_we_serve(api: Served) -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus-rules.yaml").read_text())
    served = set(_metrics(api))
    exprs = [r["expr"] for g in rules["spec"]["groups"] for r in g["rules"]]
    assert exprs and all(re.search(r"kube_sentinel_\w+", e) for e in exprs)
    for e in exprs:
        for name in re.findall(r"kube_sentinel_\w+", e):
            assert name in served, f"{name} (in deploy/monitoring/prometheus-rules.yaml) is not in /metrics"


def test_not_ready_when_rules_failed_to_reload(fresh: Served) -> None:
    fresh.runtime.health.rules_error = "reload failed, previous rules kept: rules.yaml: not valid YAML"
    r = fresh.client.get("/ready")
    assert r.status_code == 503 and "rules" in r.json()["failing"]


def _metrics(s: Served) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = s.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_metrics(api: Served) -> None:
    m = _metrics(api)
    rt = api.runtime
    assert m["kube_sentinel_lines_read_total"] == [({}, float(rt.health.lines_read))]
    stats = rt.store.stats(now=rt.clock())
    groups = {labels["priority"]: v for labels, v in m["kube_sentinel_groups"]}
    assert groups == {p: float(n) for p, n in stats.by_priority.items()}
    assert m["kube_sentinel_poll_errors_total"] == [({}, 0.0)]
    assert m["kube_sentinel_poll_duration_seconds"][0][1] > 0
    assert {lab["quantile"] for lab, _ in m["kube_sentinel_poll_duration_recent_seconds"]} == {"0.5", "0.9", "0.99"}
    actions = m["kube_sentinel_actions_total"]
    assert sum(v for _, v in actions) == sum(stats.remediations_by_result.values()) > 0
    assert all(set(lab) == {"action", "decision", "result"} for lab, _ in actions)
    assert m["kube_sentinel_breakers_open"] == [({}, 0.0)]
    assert m["kube_sentinel_ready"] == [({}, 1.0)]
    assert m["kube_sentinel_dry_run"] == [({}, 1.0)]


def test_metrics_follow_polls_errors_and_breakers(fresh: Served) -> None:
    rt = fresh.runtime
    before = _metrics(fresh)["kube_sentinel_polls_total"][0][1]
    rt.poll_once()
    assert _metrics(fresh)["kube_sentinel_polls_total"][0][1] == before + 1
    # A breaker opened by the safety state shows up (real state, written as the remediator keeps it).
    from sentinel.core.policy import Breaker

    state = rt.remediator.state()
    state.breakers["shop/checkout"] = Breaker(open=True, reason="3 ineffective restarts", opened_at=rt.clock())
    rt.store.put_state("safety", state.to_dict())
    m = _metrics(fresh)
    assert ({"workload": "shop/checkout"}, 1.0) in m["kube_sentinel_breaker_open"]
    assert m["kube_sentinel_breakers_open"] == [({}, 1.0)]
    assert rt.remediator.reset_breaker("shop/checkout", by="test")
    assert ({"workload": "shop/checkout"}, 0.0) in _metrics(fresh)["kube_sentinel_breaker_open"]


def test_each_app_has_its_own_registry(api: Served) -> None:
    a, b = create_app(api.runtime), create_app(api.runtime)
    assert a.state.metrics_registry is not b.state.metrics_registry
    assert REGISTRY.get_sample_value("kube_sentinel_lines_read_total") is None
