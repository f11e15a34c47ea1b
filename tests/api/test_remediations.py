"""``/api/remediations``: the audit log, every filter, pagination and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.api.conftest import AUTH, Served
from tests.api.test_errors import expected_csv


@pytest.fixture
def audited(fresh: Served) -> Served:
    """Engine records from the first poll plus a few manual ones (allowed and denied)."""
    rows = fresh.client.get("/api/errors", params={"page_size": 500}).json()["items"]
    shop = next(r for r in rows if r["namespace"] == "shop")
    system = next(r for r in rows if r["namespace"] == "kube-system")
    for gid, action in ((shop["id"], "rollout-restart"), (system["id"], "restart-pod"), (shop["id"], "none")):
        r = fresh.client.post(
            f"/api/errors/{gid}/remediate", json={"action": action}, headers={**AUTH, "X-Sentinel-User": "carol"}
        )
        assert r.status_code == 200, r.text
    return fresh


def everything(s: Served, **params: Any) -> list[dict[str, Any]]:
    body = s.client.get("/api/remediations", params={**params, "page_size": 500}).json()
    assert body["total"] == len(body["items"])
    return list(body["items"])


def test_newest_first_with_total(audited: Served) -> None:
    rows = everything(audited)
    assert len(rows) >= 5
    times = [r["time"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert rows[0]["requested_by"] == "carol"


@pytest.mark.parametrize("field", ["group_id", "action", "result", "decision", "namespace", "rule", "dry_run"])
def test_filter(audited: Served, field: str) -> None:
    rows = everything(audited)
    for value in {r[field] for r in rows}:
        param = str(value).lower() if isinstance(value, bool) else value
        got = everything(audited, **{field: param})
        assert got == [r for r in rows if r[field] == value], (field, value)


def test_filter_by_time(audited: Served) -> None:
    rows = everything(audited)
    cut = sorted(r["time"] for r in rows)[len(rows) // 2]
    assert everything(audited, since=str(cut)) == [r for r in rows if r["time"] >= cut]
    assert everything(audited, until=str(cut)) == [r for r in rows if r["time"] <= cut]
    assert everything(audited, since="1h") == rows


def test_pagination(audited: Served) -> None:
    rows = everything(audited)
    first = audited.client.get("/api/remediations", params={"page_size": 2}).json()
    second = audited.client.get("/api/remediations", params={"page_size": 2, "page": 2}).json()
    assert [r["id"] for r in first["items"] + second["items"]] == [r["id"] for r in rows[:4]]
    beyond = audited.client.get("/api/remediations", params={"page": 1000}).json()
    assert beyond["items"] == [] and beyond["total"] == len(rows)
    for bad in ({"page_size": 0}, {"page_size": 501}, {"page": 0}, {"result": "maybe"}, {"since": "later"}):
        assert audited.client.get("/api/remediations", params=bad).status_code == 422, bad


def test_csv_bytes_equal_the_json_rows(audited: Served) -> None:
    js = audited.client.get("/api/remediations").json()
    r = audited.client.get("/api/remediations", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    columns = list(js["items"][0])
    assert r.content == expected_csv(js["items"], columns)
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert len(parsed) == len(js["items"])
    assert parsed[0]["params"] == "" or parsed[0]["params"].startswith("{")


def test_csv_exports_every_matching_record_not_one_page(audited: Served) -> None:
    every = audited.client.get("/api/remediations", params={"page_size": 500}).json()
    assert every["total"] > 2
    r = audited.client.get("/api/remediations", params={"page_size": 2, "page": 2, "format": "csv"})
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["id"] for row in parsed] == [row["id"] for row in every["items"]]
    assert r.headers["x-total-count"] == str(every["total"])
