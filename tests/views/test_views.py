"""One read model: the API's rows are the view rows, both faces' CSV come from one writer over the
whole filtered set, and the rule tester is the engine's own explain."""

from __future__ import annotations

import csv
import io

import pytest

from sentinel.api.schemas import GroupRow, RemediationRow
from sentinel.core.model import ErrorGroup, LogEntry, Priority, Status
from sentinel.core.rules import PatternError
from sentinel.engine.pipeline import Pipeline
from sentinel.store.base import GroupQuery
from sentinel.store.memory import MemoryStore
from sentinel.views import groups, records
from sentinel.views.explain import NoSuchRule, check_line, try_line


def test_the_api_rows_are_the_view_rows() -> None:
    assert tuple(GroupRow.model_fields) == groups.VIEW_COLUMNS
    assert tuple(RemediationRow.model_fields) == records.VIEW_COLUMNS


def _store(n: int) -> MemoryStore:
    store = MemoryStore()
    for i in range(n):
        g = ErrorGroup(
            id=f"{i:016x}",
            namespace="shop" if i % 2 else "=cmd",
            workload=f"api-{i}",
            container="c",
            template=f"error number <*> in step {i}",
            rule="default",
            priority=Priority.P2 if i % 3 else Priority.P1,
            base_priority=Priority.P2,
            count=i + 1,
            first_seen=1_700_000_000.0 + i,
            last_seen=1_700_000_100.0 + i,
            status=Status.OPEN,
        )
        store.put_group(g)
    return store


def test_both_faces_export_every_filtered_group_with_one_writer() -> None:
    store = _store(12)
    query = GroupQuery(priorities=(Priority.P2,), sort="count", page=2, page_size=3)
    want = [g.id for g in store.filtered_groups(query)]
    assert len(want) == 8 and store.list_groups(query).pages > 1
    api_text, n = groups.export_csv(store, query)
    console = groups.groups_csv(
        store, groups.ErrorFilters(priorities=("P2",), sort="count", page=2, page_size=50), now=0
    )
    api_rows = list(csv.DictReader(io.StringIO(api_text)))
    console_rows = list(csv.DictReader(io.StringIO(console)))
    assert n == 8 and [r["id"] for r in api_rows] == want == [r["id"] for r in console_rows]
    for a, c in zip(api_rows, console_rows, strict=True):
        assert {k: a[k] for k in ("namespace", "count", "first_seen", "template")} == {
            k: c[k] for k in ("namespace", "count", "first_seen", "template")
        }
    assert api_rows[0]["first_seen"].endswith("Z")  # times as ISO 8601 in UTC, in both
    assert {r["namespace"] for r in api_rows} == {"shop", "'=cmd"}  # formula-safe, in both
    assert api_text.endswith("\r\n") and console.endswith("\r\n")


RULES_YAML = {
    "rules": [
        {"name": "oom", "match": {"pattern": "OOMKilled"}, "priority": "P1"},
        {"name": "timeout", "match": {"keywords": ["timed out"]}, "priority": "P3"},
    ]
}


@pytest.fixture
def pipeline() -> Pipeline:
    from sentinel.config import parse_rules

    return Pipeline(rules=parse_rules(RULES_YAML, source="test").ruleset)


LABELS = {"namespace": "shop", "pod": "cart-7d9f8b6c5d-x2x9z", "container": "cart"}


def test_the_tester_is_the_engines_explain(pipeline: Pipeline) -> None:
    line = 'level=error msg="container OOMKilled" pid=42'
    engine = pipeline.explain(LogEntry(1, LABELS, line), learn=False)
    t = check_line(pipeline, line, labels=LABELS)
    assert t.explained == engine and (t.matched, t.rule, t.priority) == (True, "oom", "P1")
    assert try_line(pipeline, line, namespace="shop", pod=LABELS["pod"], container="cart") == engine
    assert engine.workload == "cart" and engine.level == "error"


def test_the_tester_checks_a_pattern_or_a_named_rule(pipeline: Pipeline) -> None:
    line = "request timed out after 3s"
    by_pattern = check_line(pipeline, line, labels=LABELS, pattern="timed out", priority=Priority.P2)
    assert (by_pattern.matched, by_pattern.rule, by_pattern.priority) == (True, None, "P2")
    assert by_pattern.explained.rule == "timeout"  # the loaded rules still say what they say
    by_rule = check_line(pipeline, line, labels=LABELS, rule="oom")
    assert (by_rule.matched, by_rule.rule, by_rule.priority) == (False, "oom", None)
    with pytest.raises(PatternError):
        check_line(pipeline, line, labels=LABELS, pattern="a(b")
    with pytest.raises(NoSuchRule):
        check_line(pipeline, line, labels=LABELS, rule="nope")
    before = pipeline.fingerprinter.snapshot()
    check_line(pipeline, "something brand new failed", labels=LABELS)
    assert pipeline.fingerprinter.snapshot() == before  # a tested line teaches nothing
