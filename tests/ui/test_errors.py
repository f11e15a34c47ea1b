"""The Errors page: filters in the URL, the CSV of exactly the filtered rows, the detail and its actions."""

from __future__ import annotations

import csv
import io

import pytest

from sentinel.core.model import LogEntry, Priority, Status
from sentinel.engine.runtime import Runtime
from sentinel.store.base import GroupQuery, RecordQuery
from sentinel.views.groups import ErrorFilters, groups_csv
from tests.ui.conftest import BIG, no_exception, open_page, readable, table, texts


def queue(at):  # noqa: ANN001, ANN201 - AppTest, DataFrame
    return next(df for df in at.dataframe if df.key == "queue_table").value


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"priority": "P1"}, GroupQuery(priorities=(Priority.P1,)), id="priority"),
        pytest.param({"priority": "P1,P2"}, GroupQuery(priorities=(Priority.P1, Priority.P2)), id="two-priorities"),
        pytest.param({"namespace": "shop"}, GroupQuery(namespace="shop"), id="namespace"),
        pytest.param({"rule": "database-error"}, GroupQuery(rule="database-error"), id="rule"),
        pytest.param({"search": "timeout"}, GroupQuery(search="timeout"), id="text"),
        pytest.param({"status": "open"}, GroupQuery(statuses=(Status.OPEN,)), id="status"),
        pytest.param(
            {"namespace": "shop", "priority": "P2"},
            GroupQuery(namespace="shop", priorities=(Priority.P2,)),
            id="combined",
        ),
    ],
)
def test_filters_from_the_url(demo_rt: Runtime, params: dict[str, str], expected: GroupQuery) -> None:
    at = open_page("errors", params)
    no_exception(at)
    want = demo_rt.store.filtered_groups(expected)
    assert want, "the demo should have rows for this filter"
    rows = queue(at)
    assert len(rows) == len(want)
    assert list(rows["Workload"]) == [g.workload for g in want]
    assert f"{len(want)} error group" in texts(at)


def test_filter_widgets_write_the_url(demo_rt: Runtime) -> None:
    at = open_page("errors")
    at.multiselect(key="f_priority").set_value(["P1"]).run()
    at.selectbox(key="f_sort").set_value("count").run()
    no_exception(at)
    assert at.query_params["priority"] == "P1"
    assert at.query_params["sort"] == "count"
    p1 = demo_rt.store.filtered_groups(GroupQuery(priorities=(Priority.P1,), sort="count"))
    assert list(queue(at)["Count"]) == [g.count for g in p1]
    at.text_input(key="f_search").set_value("no such text anywhere").run()
    assert "No error group matches these filters" in texts(at)
    at.button(key="clear").click().run()
    assert len(queue(at)) == demo_rt.store.stats(now=demo_rt.clock()).total_groups
    assert "priority" not in at.query_params


def test_unknown_filter_values_are_ignored(demo_rt: Runtime) -> None:
    at = open_page("errors", {"priority": "P9", "since": "forever", "sort": "nope", "page": "x"})
    no_exception(at)
    assert len(queue(at)) == demo_rt.store.stats(now=demo_rt.clock()).total_groups


def test_time_range_filter(demo_rt: Runtime) -> None:
    now = demo_rt.clock()
    at = open_page("errors", {"since": "15m"})
    want = demo_rt.store.filtered_groups(GroupQuery(since=now - 900))
    assert len(queue(at)) == len(want)


def test_csv_is_exactly_the_filtered_rows(big_rt: Runtime) -> None:
    now = big_rt.clock()
    f = ErrorFilters(priorities=("P1",), namespace="team-00", page_size=50)
    rows = list(csv.DictReader(io.StringIO(groups_csv(big_rt.store, f, now=now))))
    want = big_rt.store.filtered_groups(GroupQuery(priorities=(Priority.P1,), namespace="team-00"))
    assert len(want) > 50  # more than the page on screen
    assert [r["id"] for r in rows] == [g.id for g in want]
    assert {r["priority"] for r in rows} == {"P1"}
    assert set(rows[0]) >= {
        "priority",
        "impact",
        "count",
        "first_seen",
        "last_seen",
        "namespace",
        "workload",
        "rule",
        "status",
    }


def test_download_button_is_there(demo_rt: Runtime) -> None:
    at = open_page("errors", {"priority": "P1"})
    assert any(getattr(e, "label", "") == "Download CSV" for e in at.get("download_button"))


def test_paging_through_fifty_thousand(big_rt: Runtime) -> None:
    at = open_page("errors", {"page": "3", "page_size": "50"})
    rows = queue(at)
    want = big_rt.store.list_groups(GroupQuery(page=3, page_size=50)).items
    assert list(rows["Error"].str[:20]) == [g.template[:20] for g in want]
    at.button(key="next").click().run()
    assert at.query_params["page"] == "4"
    assert f"{BIG:,} error groups" in texts(at)


def test_page_past_the_end_shows_the_last_page(demo_rt: Runtime) -> None:
    at = open_page("errors", {"page": "99"})
    no_exception(at)
    assert len(queue(at)) == demo_rt.store.stats(now=demo_rt.clock()).total_groups


# -- detail ---------------------------------------------------------------------------------------


def _remediated_group(rt: Runtime) -> str:
    rec = rt.store.list_remediations(RecordQuery()).items[0]
    return rec.group_id


def test_detail_by_link(demo_rt: Runtime) -> None:
    gid = _remediated_group(demo_rt)
    g = demo_rt.store.get_group(gid)
    assert g is not None
    at = open_page("errors", {"id": gid})
    no_exception(at)
    text = texts(at)
    assert g.workload in readable(at.title[0].value)  # log and label text is escaped markdown
    assert g.template in text
    assert "Samples" in text and g.samples[-1][:60] in text
    assert f"Matched rule **{g.rule}**" in text
    rule = demo_rt.rules.by_name(g.rule)
    assert rule is not None and rule.pattern in text
    assert len(at.get("plotly_chart")) == 1
    pods = table(at, "pod")
    assert list(pods["pod"]) == g.pods
    records = table(at, "Action", "Outcome")
    assert len(records) == demo_rt.store.list_remediations(RecordQuery(group_id=gid)).total


def test_detail_of_a_default_group_says_no_rule_matched(demo_rt: Runtime) -> None:
    # every demo line matches a shipped rule (they see the raw line); add one that matches none
    batch = demo_rt.pipeline.process([LogEntry(int(demo_rt.clock() * 1e9), {"namespace": "shop"}, "all quiet")])
    demo_rt.store.record(list(batch.deltas.values()), now=demo_rt.clock())
    g = demo_rt.store.filtered_groups(GroupQuery(rule="default"))[0]
    text = texts(open_page("errors", {"id": g.id}))
    assert "No rule matched" in text


def test_unknown_id(demo_rt: Runtime) -> None:
    at = open_page("errors", {"id": "0000000000000000"})
    no_exception(at)
    assert "not found" in at.title[0].value
    at.button(key="back").click().run()
    assert "id" not in at.query_params
    assert len(queue(at)) > 0


def test_acknowledge_needs_confirmation(demo_rt: Runtime) -> None:
    gid = demo_rt.store.filtered_groups(GroupQuery())[0].id
    at = open_page("errors", {"id": gid})
    at.button(key="ack").click().run()
    assert "Please confirm" in texts(at)
    group = demo_rt.store.get_group(gid)
    assert group is not None and group.status is Status.OPEN  # nothing yet
    at.button(key="cancel").click().run()
    group = demo_rt.store.get_group(gid)
    assert group is not None and group.status is Status.OPEN
    at.button(key="ack").click().run()
    at.button(key="confirm").click().run()
    no_exception(at)
    group = demo_rt.store.get_group(gid)
    assert group is not None and group.status is Status.ACKNOWLEDGED and group.status_by == "console"
    assert "Status is now **acknowledged**" in texts(at)


def test_snooze_and_resolve(demo_rt: Runtime) -> None:
    gid = demo_rt.store.filtered_groups(GroupQuery())[1].id
    at = open_page("errors", {"id": gid})
    at.selectbox(key="snooze_for").set_value("4 hours").run()
    at.button(key="snooze").click().run()
    at.button(key="confirm").click().run()
    g = demo_rt.store.get_group(gid)
    assert g is not None and g.status is Status.SNOOZED
    assert g.snooze_until is not None and g.snooze_until == pytest.approx(demo_rt.clock() + 4 * 3600, abs=60)
    at.button(key="resolve").click().run()
    at.button(key="confirm").click().run()
    g = demo_rt.store.get_group(gid)
    assert g is not None and g.status is Status.RESOLVED


def test_requested_action_goes_through_the_policy_into_the_audit(demo_rt: Runtime) -> None:
    g = demo_rt.store.filtered_groups(GroupQuery(rule="crashloop-backoff"))[0]
    before = demo_rt.store.list_remediations(RecordQuery(group_id=g.id)).total
    at = open_page("errors", {"id": g.id})
    at.selectbox(key="req_action").set_value("restart-pod").run()
    at.button(key="request").click().run()
    assert "restart-pod" in texts(at) and "Please confirm" in texts(at)
    # "Your name" in the shared sidebar (AppTest drops main-script elements after the first run)
    at.session_state["operator"] = "alice"
    at.button(key="confirm").click().run()
    no_exception(at)
    records = demo_rt.store.list_remediations(RecordQuery(group_id=g.id)).items
    assert len(records) == before + 1
    newest = records[0]
    assert newest.action == "restart-pod" and newest.requested_by == "console:alice"
    assert newest.dry_run  # the demo runs dry
    assert "restart-pod" in texts(at)
    assert len(table(at, "Action", "Outcome")) == before + 1


def test_requested_action_in_an_excluded_namespace_is_refused(demo_rt: Runtime) -> None:
    g = demo_rt.store.filtered_groups(GroupQuery(namespace="kube-system"))[0]
    at = open_page("errors", {"id": g.id})
    at.selectbox(key="req_action").set_value("restart-pod").run()
    at.button(key="request").click().run()
    at.button(key="confirm").click().run()
    assert "Refused" in texts(at) and "excluded" in texts(at)
    rec = demo_rt.store.list_remediations(RecordQuery(group_id=g.id)).items[0]
    assert rec.decision == "denied" and rec.requested_by == "console"


def test_bad_action_parameters_are_shown_not_sent(demo_rt: Runtime) -> None:
    g = demo_rt.store.filtered_groups(GroupQuery())[0]
    at = open_page("errors", {"id": g.id})
    at.selectbox(key="req_action").set_value("scale-up").run()
    at.text_area(key="req_params_scale-up").set_value("{not json").run()
    assert "not valid JSON" in texts(at)
    assert at.button(key="request").disabled
    at.text_area(key="req_params_scale-up").set_value('{"replicas": "lots"}').run()
    at.button(key="request").click().run()
    at.button(key="confirm").click().run()
    assert "Not done" in texts(at) and "replicas" in texts(at)
    assert demo_rt.store.list_remediations(RecordQuery(group_id=g.id, action="scale-up")).total == 0


# -- the admin token (api.token): the console asks for it, as the API does -------------------------

TOKEN = "s3cret-token"


@pytest.fixture
def token_rt(demo_rt: Runtime) -> Runtime:
    demo_rt.config.api.token = TOKEN  # type: ignore[assignment]  # validated into a SecretStr
    return demo_rt


def _status_of(rt: Runtime, gid: str) -> tuple[Status, str, float, int]:
    g = rt.store.get_group(gid)
    assert g is not None
    updates = len(rt.events.recent(frozenset({"error.updated"}), limit=10_000))
    return g.status, g.status_by, g.status_changed_at, updates


def _confirm_with(at, token: str | None) -> None:  # noqa: ANN001 - AppTest
    if token is not None:
        at.text_input(key="confirm_token").set_value(token)
    at.button(key="confirm").click().run()


@pytest.mark.parametrize(
    ("button", "start", "done"),
    [
        pytest.param("ack", Status.OPEN, Status.ACKNOWLEDGED, id="acknowledge"),
        pytest.param("snooze", Status.OPEN, Status.SNOOZED, id="snooze"),
        pytest.param("resolve", Status.OPEN, Status.RESOLVED, id="resolve"),
        pytest.param("reopen", Status.RESOLVED, Status.OPEN, id="reopen"),
    ],
)
def test_status_change_needs_the_admin_token(token_rt: Runtime, button: str, start: Status, done: Status) -> None:
    gid = token_rt.store.filtered_groups(GroupQuery())[0].id
    if start is not Status.OPEN:
        token_rt.set_status(gid, "resolve", by="setup")
    before = _status_of(token_rt, gid)
    assert before[0] is start
    at = open_page("errors", {"id": gid})
    at.button(key=button).click().run()
    token = at.text_input(key="confirm_token")
    assert token.label == "Admin token"
    for given in (None, "", "wrong", TOKEN + "x"):
        _confirm_with(at, given)
        no_exception(at)
        assert any("Wrong or missing admin token" in e.value for e in at.error), given
        assert _status_of(token_rt, gid) == before, given  # status, who, when: unchanged; no event
        assert "Please confirm" in texts(at)  # still asking
    _confirm_with(at, TOKEN)
    no_exception(at)
    g = token_rt.store.get_group(gid)
    assert g is not None and g.status is done and g.status_by == "console"
    assert f"Status is now **{done.value}**" in texts(at)
    assert not at.error


def test_requested_action_needs_the_admin_token(token_rt: Runtime) -> None:
    g = token_rt.store.filtered_groups(GroupQuery(rule="crashloop-backoff"))[0]
    everything = token_rt.store.list_remediations(RecordQuery()).total
    at = open_page("errors", {"id": g.id})
    at.selectbox(key="req_action").set_value("restart-pod").run()
    at.button(key="request").click().run()
    for given in (None, "wrong"):
        _confirm_with(at, given)
        no_exception(at)
        assert any("Wrong or missing admin token" in e.value for e in at.error)
        assert token_rt.store.list_remediations(RecordQuery()).total == everything  # no audit record at all
    _confirm_with(at, TOKEN)
    no_exception(at)
    records = token_rt.store.list_remediations(RecordQuery(group_id=g.id)).items
    assert token_rt.store.list_remediations(RecordQuery()).total == everything + 1
    assert records[0].action == "restart-pod" and records[0].requested_by == "console"


def test_cancel_forgets_the_typed_token(token_rt: Runtime) -> None:
    gid = token_rt.store.filtered_groups(GroupQuery())[0].id
    at = open_page("errors", {"id": gid})
    at.button(key="ack").click().run()
    at.text_input(key="confirm_token").set_value(TOKEN).run()
    at.button(key="cancel").click().run()
    assert "confirm_token" not in at.session_state
    at.button(key="ack").click().run()
    _confirm_with(at, None)  # the token typed before Cancel does not count now
    g = token_rt.store.get_group(gid)
    assert g is not None and g.status is Status.OPEN


def test_no_token_field_without_a_configured_token(demo_rt: Runtime) -> None:
    gid = demo_rt.store.filtered_groups(GroupQuery())[0].id
    at = open_page("errors", {"id": gid})
    at.button(key="ack").click().run()
    assert "Please confirm" in texts(at)
    assert "confirm_token" not in [t.key for t in at.text_input]


def test_the_detail_shows_the_groups_logql_and_an_explore_link_when_configured(demo_rt: Runtime) -> None:
    from sentinel.core.logql import for_group

    g = demo_rt.store.filtered_groups(GroupQuery())[0]
    at = open_page("errors", {"id": g.id})
    assert for_group(g) in [c.value for c in at.code]
    assert "grafana.url" in texts(at)
    demo_rt.config.grafana.url = "https://grafana.example.com"
    demo_rt.config.grafana.loki_datasource_uid = "loki-uid"
    at = open_page("errors", {"id": g.id})
    (button,) = [b for b in at.get("link_button") if b.proto.label == "Open in Grafana Explore"]
    assert button.proto.url.startswith("https://grafana.example.com/explore?schemaVersion=1")


def test_snooze_until_n_more_lines(demo_rt: Runtime) -> None:
    g = demo_rt.store.filtered_groups(GroupQuery())[0]
    at = open_page("errors", {"id": g.id})
    at.selectbox(key="snooze_for").set_value("until 100 more").run()
    at.button(key="snooze").click().run()
    assert "snooze this error group until 100 more lines" in texts(at)
    at.button(key="confirm").click().run()
    no_exception(at)
    after = demo_rt.store.get_group(g.id)
    assert after is not None and after.status is Status.SNOOZED
    assert after.snooze_until_count == g.count + 100 and after.snooze_until is None


@pytest.mark.parametrize("button", ["ack", "resolve"])
def test_acknowledge_and_resolve_take_a_comment_shown_in_the_detail_and_the_export(
    demo_rt: Runtime, button: str
) -> None:

    g = demo_rt.store.filtered_groups(GroupQuery())[0]
    at = open_page("errors", {"id": g.id})
    at.button(key=button).click().run()
    at.text_input(key="status_comment").set_value("INC-4211: fixed by the rollback")
    at.button(key="confirm").click().run()
    no_exception(at)
    after = demo_rt.store.get_group(g.id)
    assert after is not None and after.status_reason == "INC-4211: fixed by the rollback"
    assert "INC-4211: fixed by the rollback" in texts(at)
    rows = list(csv.DictReader(io.StringIO(groups_csv(demo_rt.store, ErrorFilters(), now=demo_rt.clock()))))
    (row,) = [r for r in rows if r["id"] == g.id]
    assert row["status_reason"] == "INC-4211: fixed by the rollback" and row["status_by"] == "console"


def test_the_queue_shows_each_groups_last_hour(demo_rt: Runtime) -> None:
    from sentinel.ui.tables import last_hour

    now = 60 * 1000 + 30.0  # half a minute into minute 1000
    assert last_hour({1000: 4, 999: 1, 995: 2, 941: 7, 940: 9, 1001: 5}, now=now) == [7] + [0] * 9 + [2, 5]
    at = open_page("errors")
    rows = queue(at)
    assert all(len(t) == 12 for t in rows["Trend"])
    recent = [sum(t) for t in rows["Trend"]]
    assert sum(recent) > 0 and all(s <= c for s, c in zip(recent, rows["Count"], strict=True))


def test_bulk_acknowledge_several_rows_one_entry_each(demo_rt: Runtime) -> None:
    groups = demo_rt.store.list_groups(GroupQuery(page_size=100)).items[:3]
    before = len(demo_rt.events.recent(frozenset({"error.updated"}), limit=10_000))
    at = open_page("errors")
    at.multiselect(key="bulk_rows").set_value([g.id for g in groups]).run()
    at.selectbox(key="bulk_action").set_value("acknowledge").run()
    at.text_input(key="bulk_comment").set_value("on it: INC-7")
    at.button(key="bulk_apply").click().run()
    no_exception(at)
    for g in groups:
        after = demo_rt.store.get_group(g.id)
        assert after is not None and after.status is Status.ACKNOWLEDGED
        assert (after.status_by, after.status_reason) == ("console", "on it: INC-7")
    updates = demo_rt.events.recent(frozenset({"error.updated"}), limit=10_000)
    assert len(updates) == before + 3
    assert any("acknowledge: 3 group(s)" in readable(s.value) for s in at.success)


def test_bulk_actions_are_refused_without_authority(demo_rt: Runtime) -> None:
    groups = demo_rt.store.list_groups(GroupQuery(page_size=100)).items[:2]
    at = open_page("errors")
    at.multiselect(key="bulk_rows").set_value([g.id for g in groups]).run()
    demo_rt.config.console.allow_changes_without_token = False  # no api.token: read-only, as the API
    at.button(key="bulk_apply").click().run()
    no_exception(at)
    assert all(demo_rt.store.get_group(g.id).status is Status.OPEN for g in groups)  # type: ignore[union-attr]
    assert any("read-only" in readable(e.value) for e in at.error)
