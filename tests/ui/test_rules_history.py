"""The Rules page (table, line tester, backtest) and the History page (filters, refusals, CSV)."""

from __future__ import annotations

import csv
import io

from sentinel.engine.runtime import Runtime
from sentinel.store.base import RecordQuery
from sentinel.views.records import RecordFilters, records_csv
from tests.ui.conftest import APP, no_exception, open_page, table, texts


def test_rules_table_lists_every_rule_with_counts(demo_rt: Runtime) -> None:
    at = open_page("rules")
    rows = table(at, "Rule", "Lines matched", "Groups", "Action")
    assert list(rows["Rule"]) == [r.name for r in demo_rt.rules.all_rules] + ["default"]
    by_rule = dict(zip(rows["Rule"], rows["Lines matched"], strict=True))
    assert by_rule["crashloop-backoff"] == demo_rt.rule_hits["crashloop-backoff"] > 0
    action = dict(zip(rows["Rule"], rows["Action"], strict=True))
    assert action["crashloop-backoff"].startswith("restart-pod")


def test_line_tester(demo_rt: Runtime) -> None:
    at = open_page("rules")
    at.text_area(key="t_line").set_value("Back-off restarting failed container web in pod web-7d9c8b6f5-abcde_shop")
    at.text_input(key="t_ns").set_value("shop")
    at.text_input(key="t_pod").set_value("web-7d9c8b6f5-abcde")
    at.button[[b.label for b in at.button].index("Classify")].click().run()
    no_exception(at)
    text = texts(at)
    assert "Rule **crashloop-backoff**" in text and "P1 critical" in text
    assert "shop/web" in text  # the workload, from the pod name


def test_line_tester_default_rule(empty_rt: Runtime) -> None:
    at = open_page("rules")
    at.text_area(key="t_line").set_value("all good here")
    at.button[[b.label for b in at.button].index("Classify")].click().run()
    assert "Rule **default**" in texts(at)


def test_backtest(demo_rt: Runtime) -> None:
    at = open_page("rules")
    at.text_input(key="b_pattern").set_value("(?i)too many clients")
    at.button[[b.label for b in at.button].index("Backtest")].click().run()
    no_exception(at)
    text = texts(at)
    assert "Matched **" in text and "postgres-unavailable" in text  # the library's PostgreSQL FATAL rule
    rows = table(at, "rule today", "sample")
    assert len(rows) >= 1 and all("too many clients" in s.lower() for s in rows["sample"])


def test_backtest_invalid_pattern(demo_rt: Runtime) -> None:
    at = open_page("rules")
    at.text_input(key="b_pattern").set_value("(unclosed")
    at.button[[b.label for b in at.button].index("Backtest")].click().run()
    assert any("Not a valid RE2 pattern" in e.value for e in at.error)


def test_backtest_over_fifty_thousand_groups(big_rt: Runtime) -> None:
    at = open_page("rules")
    at.text_input(key="b_pattern").set_value("OOMKilled")
    at.select_slider(key="b_limit").set_value(50_000)
    at.button[[b.label for b in at.button].index("Backtest")].click().run()
    no_exception(at)
    assert "Matched **6,250** groups" in texts(at)  # every 8th group is an OOM


def test_history_lists_and_filters(demo_rt: Runtime) -> None:
    total = demo_rt.store.list_remediations(RecordQuery()).total
    at = open_page("history")
    assert len(table(at, "Action", "Outcome")) == total
    assert f"{total} record" in texts(at)
    at.text_input(key="h_namespace").set_value("shop").run()
    shop = demo_rt.store.list_remediations(RecordQuery(namespace="shop")).total
    assert len(table(at, "Action", "Outcome")) == shop
    assert at.query_params["namespace"] == "shop"


def test_history_shows_why_refused(demo_rt: Runtime) -> None:
    g = demo_rt.store.list_remediations(RecordQuery()).items[0].group_id
    demo_rt.request_action(g, action="restart-pod", by="test")  # dry-run; then the per-workload cap or in-flight
    kube = next(x for x in demo_rt.store.all_groups() if x.namespace == "kube-system")
    demo_rt.request_action(kube.id, action="restart-pod", by="test")  # refused: excluded namespace
    at = open_page("history", {"decision": "denied"})
    no_exception(at)
    rows = table(at, "Action", "Outcome")
    assert len(rows) == demo_rt.store.list_remediations(RecordQuery(decision="denied")).total >= 1
    assert all("refused" in o for o in rows["Outcome"])
    reasons = table(at, "Reason", "Times")
    assert any("excluded" in r for r in reasons["Reason"])


def test_history_csv_has_every_matching_record(demo_rt: Runtime) -> None:
    rows = list(csv.DictReader(io.StringIO(records_csv(demo_rt.store, RecordFilters(), now=demo_rt.clock()))))
    want = demo_rt.store.list_remediations(RecordQuery()).items
    assert [r["id"] for r in rows] == [r.id for r in want]
    assert {"time", "action", "decision", "result", "dry_run", "reason"} <= set(rows[0])


def test_sidebar_health_and_name(demo_rt: Runtime) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    no_exception(at)
    assert [t.key for t in at.sidebar.text_input] == ["operator"]
    banners = [e.value for e in at.sidebar.success] + [e.value for e in at.sidebar.error]
    assert banners and banners[0] in ("Engine healthy", "Engine needs attention")
    assert any("No cluster: decisions are recorded only" in w.value for w in at.sidebar.warning)
    assert any("Changes without a token" in w.value for w in at.sidebar.warning)  # the demo's explicit flag
