"""Scripts written for the Go tool keep working (issue 15, items 4 and 5): its query parameter, response
fields and settings keys are aliases of ours; CSV times are ISO 8601 in UTC."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api.conftest import AUTH, Served

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_page_size_in_the_go_tools_spelling(api: Served) -> None:
    body = api.client.get("/api/errors", params={"pageSize": 3}).json()
    assert body["page_size"] == body["pageSize"] == 3 and len(body["items"]) == 3
    assert body["errors"] == body["items"]  # the Go tool's name for the rows
    assert api.client.get("/api/errors", params={"pageSize": 3, "page_size": 3}).status_code == 200
    r = api.client.get("/api/errors", params={"pageSize": 3, "page_size": 5})
    assert r.status_code == 422 and r.json()["problems"] == ["pageSize: and page_size name the same thing: give one"]
    r = api.client.get("/api/errors", params={"pageSize": 0})
    assert r.status_code == 422 and r.json()["problems"][0].startswith("query.pageSize")


@pytest.mark.parametrize(
    ("go", "ours"),
    [
        pytest.param({"enabled": True, "dry_run": True}, {"remediation_enabled": True, "dry_run": True}, id="issue"),
        pytest.param({"enabled": False}, {"remediation_enabled": False}, id="enabled"),
        pytest.param(
            {"dryRun": True, "maxActionsPerHour": 9}, {"dry_run": True, "max_actions_per_hour": 9}, id="camel"
        ),
        pytest.param({"pollInterval": "45s"}, {"poll_interval": 45.0}, id="poll"),
        pytest.param(
            {"excludedNamespaces": ["kube-system", "x"]}, {"excluded_namespaces": ["kube-system", "x"]}, id="ns"
        ),
    ],
)
def test_settings_in_the_go_tools_names(fresh: Served, go: dict[str, Any], ours: dict[str, Any]) -> None:
    r = fresh.client.post("/api/settings", json=go, headers=AUTH)
    assert r.status_code == 200, r.text
    settings = fresh.client.get("/api/settings").json()["settings"]
    assert {k: settings[k] for k in ours} == ours


def test_one_setting_under_two_names_is_refused(fresh: Served) -> None:
    before = fresh.runtime.settings
    r = fresh.client.post("/api/settings", json={"enabled": False, "remediation_enabled": True}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["problems"] == [
        "remediation_enabled: remediation_enabled and enabled name the same setting: give one"
    ]
    assert fresh.runtime.settings == before


def test_a_bad_value_under_a_go_name_is_named(fresh: Served) -> None:
    r = fresh.client.post("/api/settings", json={"pollInterval": "1s", "colour": "red"}, headers=AUTH)
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert any(p.startswith("poll_interval") for p in problems) and any(p.startswith("colour") for p in problems)


@pytest.mark.parametrize(
    ("path", "columns"), [("/api/errors", ("first_seen", "last_seen")), ("/api/remediations", ("time",))]
)
def test_csv_times_are_iso_8601_utc(api: Served, path: str, columns: tuple[str, ...]) -> None:
    js = api.client.get(path, params={"page_size": 500}).json()["items"]  # CSV: every row, whatever the page
    rows = list(csv.DictReader(io.StringIO(api.client.get(path, params={"page_size": 20, "format": "csv"}).text)))
    assert rows and len(rows) == len(js)
    for row, item in zip(rows, js, strict=True):
        for c in columns:
            assert ISO.match(row[c]), row[c]
            assert row[c] == datetime.fromtimestamp(item[c], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
