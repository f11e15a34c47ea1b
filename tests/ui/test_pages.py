"""Every page renders with an empty store, with the demo data, and with 50,000 groups."""

from __future__ import annotations

import pytest

from sentinel.engine.runtime import Runtime
from sentinel.store.base import RecordQuery
from sentinel.ui.format import count
from tests.ui.conftest import BIG, PAGES, no_exception, open_page, table, texts

TITLES = {
    "overview": "Overview",
    "errors": "Errors",
    "rules": "Rules",
    "history": "History",
    "settings": "Settings",
}


@pytest.mark.parametrize("page", list(PAGES))
def test_empty_store(empty_rt: Runtime, page: str) -> None:
    at = open_page(page)
    no_exception(at)
    assert TITLES[page] in at.title[0].value


def test_overview_empty_says_what_to_expect(empty_rt: Runtime) -> None:
    text = texts(open_page("overview"))
    assert "No errors yet" in text and "polls every 5s" in text
    # the demo has no cluster: the banner says so, and does not claim the API server checks anything
    assert "No cluster: decisions are recorded only" in text and "dryRun=All" not in text


def test_errors_empty_state(empty_rt: Runtime) -> None:
    text = texts(open_page("errors"))
    assert "No errors yet" in text
    assert "0 error groups" in text


def test_history_empty_state(empty_rt: Runtime) -> None:
    assert "No remediation yet" in texts(open_page("history"))


@pytest.mark.parametrize("page", list(PAGES))
def test_demo_data(demo_rt: Runtime, page: str) -> None:
    at = open_page(page)
    no_exception(at)
    assert TITLES[page] in at.title[0].value


def test_overview_demo_shows_counts_charts_feed(demo_rt: Runtime) -> None:
    at = open_page("overview")
    stats = demo_rt.store.stats(now=demo_rt.clock())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[":red[●] P1 critical"] == str(stats.by_priority["P1"])
    assert metrics["All groups"] == str(stats.total_groups)
    assert any(k.endswith("Loki") or "Log source" in k for k in metrics)
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # over time, namespaces, workloads
    feed = table(at, "What", "Workload")
    assert len(feed) > 0 and set(feed["What"]) == {"new"}
    recent = table(at, "Action", "Outcome")
    assert len(recent) == min(10, demo_rt.store.list_remediations(RecordQuery()).total) > 0


def test_errors_demo_queue_is_in_priority_order(demo_rt: Runtime) -> None:
    at = open_page("errors")
    table = next(df for df in at.dataframe if df.key == "queue_table").value
    total = demo_rt.store.stats(now=demo_rt.clock()).total_groups
    assert len(table) == total
    ranks = [int(p[1]) for p in table["Priority"]]
    assert ranks == sorted(ranks)
    assert f"{total} error groups" in texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_fifty_thousand_groups(big_rt: Runtime, page: str) -> None:
    """Every page renders with 50,000 groups (how fast is ``make bench``'s figure, not a test's)."""
    at = open_page(page)
    no_exception(at)
    assert TITLES[page] in at.title[0].value


def test_overview_with_fifty_thousand_groups_counts_them_all(big_rt: Runtime) -> None:
    at = open_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["All groups"] == count(BIG)
    assert len(at.get("plotly_chart")) >= 3


def test_errors_page_with_fifty_thousand_groups_is_paged(big_rt: Runtime) -> None:
    at = open_page("errors")
    no_exception(at)
    table = next(df for df in at.dataframe if df.key == "queue_table").value
    assert len(table) == 100  # one page, not 50,000 rows
    assert f"{BIG:,} error groups" in texts(at)
    assert "Showing 1–100" in texts(at)
    assert at.number_input(key="f_page").label == f"Page (of {BIG // 100:,})"
    assert any(getattr(e, "label", "") == "Download CSV" for e in at.get("download_button"))
