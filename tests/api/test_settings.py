"""``/api/settings``: read, change (validated whole, persisted, applied live, who recorded), refuse."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import AUTH, Served


def test_get_settings_and_read_only_flag(api: Served, readonly: Served) -> None:
    body = api.client.get("/api/settings").json()
    s = api.runtime.settings
    assert body["settings"] == {**s.to_dict(), "excluded_namespaces": list(s.excluded_namespaces)}
    assert body["read_only"] is False and body["history"] == []
    assert set(body["settings"]) == {
        "remediation_enabled", "dry_run", "max_actions_per_hour", "per_workload_per_hour",
        "excluded_namespaces", "poll_interval", "lookback", "query",
    }  # fmt: skip
    assert readonly.client.get("/api/settings").json()["read_only"] is True


def test_change_is_applied_live_persisted_and_recorded(fresh: Served) -> None:
    rt = fresh.runtime
    change = {
        "remediation_enabled": False,
        "max_actions_per_hour": 7,
        "excluded_namespaces": ["kube-system", "batch"],
        "poll_interval": "45s",
        "lookback": 600,
        "query": '{namespace="shop"} |= "error"',
    }
    r = fresh.client.post("/api/settings", json=change, headers={**AUTH, "X-Sentinel-User": "dana"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["by"] == "dana"
    assert body["changed"]["max_actions_per_hour"] == [50, 7]
    assert body["changed"]["poll_interval"] == [30.0, 45.0]
    assert body["settings"]["excluded_namespaces"] == ["batch", "kube-system"]
    # live
    assert rt.settings.max_actions_per_hour == 7 and rt.settings.remediation_enabled is False
    assert rt.remediator.limits.max_actions_per_hour == 7 and rt.remediator.limits.enabled is False
    assert rt.remediator.limits.excluded_namespaces == frozenset({"kube-system", "batch"})
    # persisted
    stored = rt.store.get_state("settings")
    assert stored is not None and stored["max_actions_per_hour"] == 7 and stored["lookback"] == 600
    # recorded, and shown
    view = fresh.client.get("/api/settings").json()
    assert view["settings"]["poll_interval"] == 45.0
    assert view["history"][0]["by"] == "dana" and "query" in view["history"][0]["changes"]
    # a manual action now meets the new limits
    gid = fresh.client.get("/api/errors", params={"namespace": "shop"}).json()["items"][0]["id"]
    rec = fresh.client.post(f"/api/errors/{gid}/remediate", json={"action": "rollout-restart"}, headers=AUTH).json()
    assert rec["decision"] == "denied" and "disabled" in rec["reason"]


def test_unchanged_values_change_nothing(fresh: Served) -> None:
    r = fresh.client.post("/api/settings", json={"dry_run": True}, headers=AUTH)
    assert r.status_code == 200 and r.json()["changed"] == {}
    assert fresh.client.get("/api/settings").json()["history"] == []


@pytest.mark.parametrize(
    ("change", "bad"),
    [
        pytest.param({"max_actions_per_hour": 7, "poll_interval": "1s"}, ["poll_interval"], id="interval-too-short"),
        pytest.param({"dry_run": False, "lookback": "forever"}, ["lookback"], id="lookback-unparseable"),
        pytest.param({"max_actions_per_hour": -1, "dry_run": False}, ["max_actions_per_hour"], id="negative-budget"),
        pytest.param({"excluded_namespaces": ["ok", "Not_OK"], "dry_run": False}, ["excluded_namespaces"], id="ns"),
        pytest.param({"query": "error", "max_actions_per_hour": 3}, ["query"], id="query-without-selector"),
        pytest.param({"dry_run": False, "colour": "red"}, ["colour"], id="unknown-field"),
        pytest.param(
            {"poll_interval": "1s", "lookback": "x", "query": "nope", "remediation_enabled": "perhaps"},
            ["poll_interval", "lookback", "query", "remediation_enabled"],
            id="four-bad-fields",
        ),
    ],
)
def test_one_bad_field_changes_nothing_and_is_named(fresh: Served, change: dict[str, Any], bad: list[str]) -> None:
    rt = fresh.runtime
    before = (rt.settings, rt.remediator.limits, rt.store.get_state("settings"), rt.settings_history())
    r = fresh.client.post("/api/settings", json=change, headers=AUTH)
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    for field in bad:
        assert any(p.startswith(f"{field}") for p in problems), (field, problems)
    assert len(problems) == len(bad)
    assert (rt.settings, rt.remediator.limits, rt.store.get_state("settings"), rt.settings_history()) == before
    assert fresh.client.get("/api/settings").json()["settings"] == {
        **rt.settings.to_dict(),
        "excluded_namespaces": list(rt.settings.excluded_namespaces),
    }


@pytest.mark.parametrize("body", [[1, 2], "dry_run", None, 5])
def test_body_must_be_an_object(fresh: Served, body: Any) -> None:
    assert fresh.client.post("/api/settings", json=body, headers=AUTH).status_code == 422
