"""The console's pure helpers: URL filters, formatting, the live feed, the settings form's mapping."""

from __future__ import annotations

import pytest

from sentinel.engine.events import Event
from sentinel.engine.settings import RuntimeSettings
from sentinel.ui.format import ago, count, duration, priority_badge, priority_cell_style
from sentinel.ui.queries import live_feed
from sentinel.ui.settings_form import change_of, field_errors, form_values, history_rows
from sentinel.views.groups import ErrorFilters
from sentinel.views.params import same_params
from sentinel.views.records import RecordFilters


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param(ErrorFilters(), id="default"),
        pytest.param(ErrorFilters(priorities=("P1", "P2"), statuses=("open",), namespace="shop"), id="lists"),
        pytest.param(ErrorFilters(workload="api", rule="timeout", search="deadline", range="1h"), id="text"),
        pytest.param(ErrorFilters(sort="count", page=3, page_size=50), id="sort-page"),
    ],
)
def test_error_filters_round_trip_through_the_url(filters: ErrorFilters) -> None:
    assert ErrorFilters.from_params(filters.to_params()) == filters


def test_error_filters_accept_the_apis_repeated_and_named_forms() -> None:
    f = ErrorFilters.from_params({"priority": ["critical", "P2", "p2"], "status": ["OPEN", "nope"], "since": "15m"})
    assert f.priorities == ("P1", "P2") and f.statuses == ("open",) and f.range == "15m"
    assert f.to_params() == {"priority": ["P1", "P2"], "status": ["open"], "since": "15m"}


def test_plain_queue_has_a_plain_url() -> None:
    assert ErrorFilters().to_params() == {}
    assert not ErrorFilters(sort="count").active


def test_since_filter_becomes_a_time() -> None:
    q = ErrorFilters(range="1h").query(now=10_000.0)
    assert q.since == 10_000.0 - 3600
    assert ErrorFilters().query(now=10_000.0).since is None


def test_record_filters_round_trip() -> None:
    f = RecordFilters(action="restart-pod", decision="denied", dry_run="no", range="24h", page=2)
    assert RecordFilters.from_params(f.to_params()) == f
    assert f.query(now=100_000.0).dry_run is False


def test_same_params() -> None:
    assert same_params({"priority": ["P1"], "page": "2"}, {"page": ["2"], "priority": "P1"})
    assert not same_params({"priority": ["P1", "P2"]}, {"priority": ["P1"]})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (90, "1m30s"), (600, "10m"), (3600, "1h"), (5400, "1h30m"), (90_000, "1d1h")],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_small_formatters() -> None:
    assert ago(None) == "never" and ago(100.0, now=160.0) == "1m ago"
    assert count(950) == "950" and count(12_345) == "12.3k" and count(4_500_000) == "4.5M"
    assert priority_badge("P1") == "P1 critical"
    assert "background-color" in priority_cell_style("P2 high") and priority_cell_style("x") == ""


def _event(i: int, type_: str, change: str, **data: object) -> Event:
    return Event(i, type_, float(i), {"change": change, "id": f"g{i}", "priority": "P1", **data})


def test_live_feed_keeps_new_escalated_regressed() -> None:
    events = [
        _event(5, "error.updated", "updated"),
        _event(4, "error.updated", "escalated"),
        _event(3, "error.updated", "lifecycle", escalated=True),
        _event(2, "error.updated", "regressed"),
        _event(1, "error.new", "new"),
        _event(0, "error.updated", "acknowledge"),
    ]
    assert [r["change"] for r in live_feed(events)] == ["escalated", "escalated", "regressed", "new"]


SETTINGS = RuntimeSettings(True, True, 50, 3, ("kube-system",), 30.0, 300.0, '{namespace=~".+"}')


def test_settings_form_sends_only_changes() -> None:
    values = form_values(SETTINGS)
    assert values["poll_interval"] == "30s" and values["excluded_namespaces"] == "kube-system"
    assert change_of(SETTINGS, values) == {}
    changed = {**values, "poll_interval": " 1m ", "excluded_namespaces": "kube-system, monitoring", "dry_run": False}
    assert change_of(SETTINGS, changed) == {
        "poll_interval": "1m",
        "excluded_namespaces": ["kube-system", "monitoring"],
        "dry_run": False,
    }
    assert change_of(SETTINGS, {**values, "excluded_namespaces": " kube-system ,"}) == {}


def test_field_errors_map_problems_to_fields() -> None:
    got = field_errors(["poll_interval: must be between 5s and 1h", "weird", "excluded_namespaces.0: bad"])
    assert got == {"poll_interval": ["must be between 5s and 1h"], "_form": ["weird"], "excluded_namespaces": ["bad"]}


def test_history_rows_newest_first() -> None:
    rows = history_rows(
        [
            {"time": 1.0, "by": "a", "changes": {"poll_interval": [30.0, 60.0]}},
            {"time": 2.0, "by": "b", "changes": {"excluded_namespaces": [["x"], ["x", "y"]]}},
        ]
    )
    assert [r["by"] for r in rows] == ["b", "a"]
    assert rows[1]["from"] == "30s" and rows[1]["to"] == "1m" and rows[0]["to"] == "x, y"


def test_audit_table_shows_folded_repeats() -> None:
    from datetime import datetime

    from sentinel.core.model import RemediationRecord
    from sentinel.ui.tables import records_frame

    base = {"group_id": "g", "rule": "r", "action": "rollout-restart", "namespace": "demo", "kind": "", "name": "web"}
    once = RemediationRecord(id="a", time=100.0, decision="denied", reason="cooldown 1m remaining", **base)
    folded = RemediationRecord(
        id="b", time=100.0, decision="denied", reason="cooldown 30s remaining", count=4, last_time=190.0, **base
    )
    why = list(records_frame([once, folded])["Why"])
    assert why[0] == "cooldown 1m remaining"
    assert why[1] == f"cooldown 30s remaining (×4, the last at {datetime.fromtimestamp(190.0):%H:%M:%S})"
