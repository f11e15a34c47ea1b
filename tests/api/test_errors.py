"""``/api/errors``: every filter, sorts, pagination edges, CSV, one group, status changes, manual actions."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from sentinel.api.common import csv_cell
from sentinel.store.base import GroupQuery
from tests.api.conftest import AUTH, Served


def all_rows(api: Served, **params: Any) -> list[dict[str, Any]]:
    r = api.client.get("/api/errors", params={**params, "page_size": 500})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["items"])
    return list(body["items"])


def expected_csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([csv_cell(row[c], column=c) for c in columns])
    return buf.getvalue().encode()


# -- listing -------------------------------------------------------------------------------------


def test_list_has_every_group_with_total(api: Served) -> None:
    body = api.client.get("/api/errors").json()
    groups = api.runtime.store.all_groups()
    assert body["total"] == len(groups) > 10
    assert body["page"] == 1 and body["page_size"] == 100 and body["pages"] == 1
    assert {row["id"] for row in body["items"]} == {g.id for g in groups}
    row = body["items"][0]
    assert set(row) >= {"id", "priority", "status", "namespace", "workload", "rule", "template", "count", "last_seen"}


def _pick(api: Served) -> dict[str, Any]:
    """A group with a pod, to filter on its fields."""
    rows = all_rows(api)
    for row in rows:
        g = api.runtime.store.get_group(row["id"])
        assert g is not None
        if g.pods:
            return {**row, "pods": g.pods}
    raise AssertionError("no group with pods")


@pytest.mark.parametrize("field", ["namespace", "workload", "rule", "status"])
def test_filter_by_field(api: Served, field: str) -> None:
    target = _pick(api)
    rows = all_rows(api, **{field: target[field]})
    assert rows and all(r[field] == target[field] for r in rows)
    everything = all_rows(api)
    assert len(rows) == sum(1 for r in everything if r[field] == target[field])


def test_filter_by_pod(api: Served) -> None:
    target = _pick(api)
    pod = target["pods"][0]
    rows = all_rows(api, pod=pod)
    assert target["id"] in {r["id"] for r in rows}
    for r in rows:
        g = api.runtime.store.get_group(r["id"])
        assert g is not None and pod in g.pods
    assert all_rows(api, pod="no-such-pod-xyz") == []


def test_filter_by_priority_is_repeatable_and_takes_names(api: Served) -> None:
    everything = all_rows(api)
    p1 = [r for r in everything if r["priority"] == "P1"]
    p1_p2 = [r for r in everything if r["priority"] in ("P1", "P2")]
    assert p1 and len(p1_p2) > len(p1)
    assert [r["id"] for r in all_rows(api, priority="P1")] == [r["id"] for r in p1]
    r = api.client.get("/api/errors", params=[("priority", "P1"), ("priority", "high"), ("page_size", "500")])
    assert sorted(x["id"] for x in r.json()["items"]) == sorted(x["id"] for x in p1_p2)
    assert [r["id"] for r in all_rows(api, priority="critical")] == [r["id"] for r in p1]


def test_filter_by_several_statuses(api: Served) -> None:
    r = api.client.get("/api/errors", params=[("status", "open"), ("status", "resolved")])
    assert r.status_code == 200
    assert r.json()["total"] == len(all_rows(api, status="open")) + len(all_rows(api, status="resolved"))


def test_filter_by_search(api: Served) -> None:
    target = _pick(api)
    word = max(target["template"].replace("<*>", " ").split(), key=len)
    rows = all_rows(api, search=word.upper())
    assert target["id"] in {r["id"] for r in rows}
    assert len(rows) < len(all_rows(api)) or len(all_rows(api)) == 1
    assert all_rows(api, search="zzz-nothing-matches-this-zzz") == []


def test_filter_by_since_in_three_spellings(api: Served) -> None:
    everything = all_rows(api)
    cut = sorted(r["last_seen"] for r in everything)[len(everything) // 2]
    expected = {r["id"] for r in everything if r["last_seen"] >= cut}
    assert {r["id"] for r in all_rows(api, since=str(cut))} == expected
    iso = datetime.fromtimestamp(int(cut), UTC).isoformat()
    assert {r["id"] for r in all_rows(api, since=iso)} >= expected
    assert {r["id"] for r in all_rows(api, since="1000d")} == {r["id"] for r in everything}
    assert all_rows(api, since=str(time.time() + 86400)) == []


def test_filters_combine(api: Served) -> None:
    target = _pick(api)
    rows = all_rows(api, namespace=target["namespace"], priority=target["priority"], rule=target["rule"])
    assert target["id"] in {r["id"] for r in rows}
    assert all(
        (r["namespace"], r["priority"], r["rule"]) == (target["namespace"], target["priority"], target["rule"])
        for r in rows
    )


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        pytest.param("priority", lambda r: (r["priority"], -r["impact"], -r["last_seen"]), id="priority"),
        pytest.param("impact", lambda r: (-r["impact"], r["priority"], -r["last_seen"]), id="impact"),
        pytest.param("last_seen", lambda r: (-r["last_seen"], r["priority"]), id="last_seen"),
        pytest.param("count", lambda r: (-r["count"], r["priority"]), id="count"),
    ],
)
def test_sort(api: Served, sort: str, key: Any) -> None:
    rows = all_rows(api, sort=sort)
    assert [key(r) for r in rows] == sorted(key(r) for r in rows)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"page_size": 0}, id="page_size-0"),
        pytest.param({"page_size": 501}, id="page_size-501"),
        pytest.param({"page": 0}, id="page-0"),
        pytest.param({"page": "x"}, id="page-not-a-number"),
        pytest.param({"sort": "bogus"}, id="sort"),
        pytest.param({"priority": "P9"}, id="priority"),
        pytest.param({"status": "sleeping"}, id="status"),
        pytest.param({"since": "yesterday-ish"}, id="since"),
        pytest.param({"since": "nan"}, id="since-nan"),
        pytest.param({"format": "xml"}, id="format"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(api: Served, params: dict[str, Any]) -> None:
    r = api.client.get("/api/errors", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    name = next(iter(params))
    assert body["detail"] and any(name in p for p in body["problems"]), body


def test_pagination_pages_add_up_and_beyond_last_is_empty(api: Served) -> None:
    everything = all_rows(api)
    size = 4
    pages = -(-len(everything) // size)
    seen: list[str] = []
    for page in range(1, pages + 1):
        body = api.client.get("/api/errors", params={"page": page, "page_size": size}).json()
        assert body["total"] == len(everything) and body["pages"] == pages
        assert len(body["items"]) == (size if page < pages else len(everything) - size * (pages - 1))
        seen += [r["id"] for r in body["items"]]
    assert seen == [r["id"] for r in everything]
    beyond = api.client.get("/api/errors", params={"page": pages + 1, "page_size": size}).json()
    assert beyond["items"] == [] and beyond["total"] == len(everything)
    edge = api.client.get("/api/errors", params={"page_size": 500}).json()
    assert edge["page_size"] == 500
    one = api.client.get("/api/errors", params={"page_size": 1}).json()
    assert len(one["items"]) == 1 and one["pages"] == len(everything)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="all"),
        pytest.param({"priority": "P2", "sort": "count"}, id="filtered"),
        pytest.param({"page": 2, "page_size": 5}, id="page-2"),
        pytest.param({"page": 99}, id="empty"),
    ],
)
def test_csv_bytes_equal_the_json_rows(api: Served, params: dict[str, Any]) -> None:
    """The CSV holds every row the filters select (all pages, whatever page is asked), as JSON gives them."""
    filters = {k: v for k, v in params.items() if k not in ("page", "page_size")}
    js = all_rows(api, **filters)
    r = api.client.get("/api/errors", params={**params, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-total-count"] == str(len(js))
    columns = list(r.text.splitlines()[0].split(","))
    assert js == [] or columns == list(js[0])
    assert r.content == expected_csv(js, columns)
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["id"] for row in parsed] == [row["id"] for row in js]


def test_csv_exports_the_whole_filtered_set_not_one_page(api: Served) -> None:
    """A filter matching more than one page exports every matching row, in the list's order."""
    params = {"status": "open", "sort": "count", "page_size": 5}
    first = api.client.get("/api/errors", params=params).json()
    assert first["pages"] > 1, "the demo must give the filter more than one page"
    every = [row["id"] for row in all_rows(api, status="open", sort="count")]
    assert len(every) == first["total"] > 5
    for page in (1, 2):
        r = api.client.get("/api/errors", params={**params, "page": page, "format": "csv"})
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["id"] for row in rows] == every
        assert r.headers["x-total-count"] == str(first["total"])
    narrower = api.client.get("/api/errors", params={"priority": "P1", "format": "csv", "page_size": 1}).text
    p1 = [row["id"] for row in all_rows(api, priority="P1")]
    assert [row["id"] for row in csv.DictReader(io.StringIO(narrower))] == p1


def test_matches_the_store_query(api: Served) -> None:
    page = api.runtime.store.list_groups(GroupQuery(sort="impact", page_size=7, page=2))
    body = api.client.get("/api/errors", params={"sort": "impact", "page_size": 7, "page": 2}).json()
    assert [r["id"] for r in body["items"]] == [g.id for g in page.items]


# -- one group -----------------------------------------------------------------------------------


def test_detail_has_samples_minute_counts_and_records(api: Served) -> None:
    records = api.client.get("/api/remediations", params={"page_size": 500}).json()["items"]
    assert records, "the demo rules remediate something on the first poll"
    gid = records[0]["group_id"]
    r = api.client.get(f"/api/errors/{gid}")
    assert r.status_code == 200
    d = r.json()
    g = api.runtime.store.get_group(gid)
    assert g is not None
    assert d["id"] == gid and d["count"] == g.count and d["samples"] == g.samples and d["pods"] == g.pods
    assert sum(m["count"] for m in d["minute_counts"]) == g.count
    assert all(m["minute"] % 60 == 0 for m in d["minute_counts"])
    assert d["remediation_total"] == sum(1 for x in records if x["group_id"] == gid)
    assert {x["id"] for x in d["remediation_history"]} == {x["id"] for x in records if x["group_id"] == gid}


@pytest.mark.parametrize("gid", ["0000000000000000", "nope", "x" * 128])
def test_unknown_group_is_404_json(api: Served, gid: str) -> None:
    r = api.client.get(f"/api/errors/{gid}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert "no error group" in r.json()["detail"]


# -- status changes ------------------------------------------------------------------------------


def _first_id(s: Served, **params: Any) -> str:
    return str(s.client.get("/api/errors", params=params).json()["items"][0]["id"])


def test_status_changes_with_who_and_why(fresh: Served) -> None:
    gid = _first_id(fresh)
    who = {**AUTH, "X-Sentinel-User": "alice"}
    r = fresh.client.patch(f"/api/errors/{gid}", json={"action": "acknowledge", "reason": "on it"}, headers=who)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["status"], d["status_by"], d["status_reason"]) == ("acknowledged", "alice", "on it")
    g = fresh.runtime.store.get_group(gid)
    assert g is not None and g.status.value == "acknowledged" and g.status_by == "alice"
    assert [x["id"] for x in fresh.client.get("/api/errors", params={"status": "acknowledged"}).json()["items"]] == [
        gid
    ]

    until = time.time() + 3600
    d = fresh.client.patch(f"/api/errors/{gid}", json={"action": "snooze", "until": until}, headers=AUTH).json()
    assert d["status"] == "snoozed" and d["snooze_until"] == until and d["status_by"] == "api"

    d = fresh.client.patch(f"/api/errors/{gid}", json={"action": "snooze", "duration": "2h"}, headers=AUTH).json()
    assert d["status"] == "snoozed" and abs(d["snooze_until"] - (time.time() + 7200)) < 60

    d = fresh.client.patch(f"/api/errors/{gid}", json={"action": "snooze", "more": 10}, headers=AUTH).json()
    assert d["status"] == "snoozed" and d["snooze_until_count"] == d["count"] + 10 and d["snooze_until"] is None

    d = fresh.client.patch(f"/api/errors/{gid}", json={"action": "resolve", "reason": "fixed"}, headers=who).json()
    assert (d["status"], d["status_reason"], d["snooze_until_count"]) == ("resolved", "fixed", None)

    d = fresh.client.patch(f"/api/errors/{gid}", json={"action": "reopen"}, headers=who).json()
    assert d["status"] == "open"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"action": "snooze"}, id="snooze-without-until-or-more"),
        pytest.param({"action": "snooze", "until": 1.0}, id="snooze-until-past"),
        pytest.param({"action": "snooze", "more": 0}, id="snooze-more-0"),
        pytest.param({"action": "snooze", "duration": "soon"}, id="snooze-bad-duration"),
        pytest.param({"action": "snooze", "until": 9e9, "duration": "1h"}, id="snooze-both"),
        pytest.param({"action": "resolve", "more": 3}, id="more-without-snooze"),
        pytest.param({"action": "delete"}, id="unknown-action"),
        pytest.param({"action": "resolve", "who": "me"}, id="unknown-field"),
        pytest.param({"action": "resolve", "reason": "x" * 1001}, id="reason-too-long"),
        pytest.param({}, id="empty"),
    ],
)
def test_bad_status_change_is_422_and_changes_nothing(fresh: Served, body: dict[str, Any]) -> None:
    gid = _first_id(fresh)
    before = fresh.runtime.store.get_group(gid)
    r = fresh.client.patch(f"/api/errors/{gid}", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["problems"]
    assert fresh.runtime.store.get_group(gid) == before


def test_unknown_field_is_named(fresh: Served) -> None:
    r = fresh.client.patch(f"/api/errors/{_first_id(fresh)}", json={"action": "resolve", "who": "me"}, headers=AUTH)
    assert "who: unknown field" in r.json()["problems"]


def test_status_change_on_unknown_group_is_404(fresh: Served) -> None:
    r = fresh.client.patch("/api/errors/ffffffffffffffff", json={"action": "resolve"}, headers=AUTH)
    assert r.status_code == 404 and "no error group" in r.json()["detail"]


# -- manual remediation --------------------------------------------------------------------------


def test_remediate_goes_through_the_safety_decision_and_audit(fresh: Served) -> None:
    gid = _first_id(fresh, namespace="shop")
    before = fresh.client.get("/api/remediations").json()["total"]
    r = fresh.client.post(
        f"/api/errors/{gid}/remediate",
        json={"action": "rollout-restart"},
        headers={**AUTH, "X-Sentinel-User": "bob"},
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["group_id"] == gid and rec["action"] == "rollout-restart" and rec["requested_by"] == "bob"
    assert rec["decision"] == "allowed" and rec["dry_run"] is True
    audit = fresh.client.get("/api/remediations", params={"group_id": gid}).json()
    assert audit["total"] >= 1 and audit["items"][0]["id"] == rec["id"]
    assert fresh.client.get("/api/remediations").json()["total"] == before + 1
    # The same workload again at once: the cooldown/in-flight rules of the policy decide, and say why.
    again = fresh.client.post(f"/api/errors/{gid}/remediate", json={"action": "rollout-restart"}, headers=AUTH).json()
    assert again["requested_by"] == "api"
    assert fresh.client.get("/api/remediations").json()["total"] == before + 2


def test_remediate_in_an_excluded_namespace_is_denied_and_audited(fresh: Served) -> None:
    gid = _first_id(fresh, namespace="kube-system")
    rec = fresh.client.post(f"/api/errors/{gid}/remediate", json={"action": "restart-pod"}, headers=AUTH).json()
    assert rec["decision"] == "denied" and "excluded" in rec["reason"]
    denied = fresh.client.get("/api/remediations", params={"decision": "denied", "group_id": gid}).json()
    assert [x["id"] for x in denied["items"]] == [rec["id"]]


def test_remediate_without_body_uses_the_rule_action(fresh: Served) -> None:
    records = fresh.client.get("/api/remediations").json()["items"]
    gid = records[0]["group_id"]
    rec = fresh.client.post(f"/api/errors/{gid}/remediate", json={}, headers=AUTH).json()
    assert rec["action"] == records[0]["action"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"action": "format-disk"}, id="unknown-action"),
        pytest.param({"action": "scale-up", "params": {"replicas": "lots"}}, id="bad-params"),
        pytest.param({"action": "restart-pod", "force": True}, id="unknown-field"),
    ],
)
def test_remediate_bad_request_is_422(fresh: Served, body: dict[str, Any]) -> None:
    gid = _first_id(fresh)
    before = fresh.client.get("/api/remediations").json()["total"]
    r = fresh.client.post(f"/api/errors/{gid}/remediate", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert fresh.client.get("/api/remediations").json()["total"] == before


def test_remediate_unknown_group_is_404(fresh: Served) -> None:
    r = fresh.client.post("/api/errors/ffffffffffffffff/remediate", json={}, headers=AUTH)
    assert r.status_code == 404
