"""The pipeline: grouping by namespace + workload + container + template; exact counts; merges settle."""

from __future__ import annotations

import random
from pathlib import Path

from sentinel.config import load_rules
from sentinel.core.fingerprint import Fingerprinter
from sentinel.core.model import LogEntry
from sentinel.engine.pipeline import Pipeline
from sentinel.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "config" / "rules.yaml").ruleset
T0 = 1_795_826_344_000_000_000


def entries(lines: list[tuple[dict[str, str], str]]) -> list[LogEntry]:
    return [LogEntry(T0 + i * 1_000_000, labels, line) for i, (labels, line) in enumerate(lines)]


API0 = {"namespace": "shop", "pod": "api-7d4b9c8f6d-xk2lp", "container": "api"}
API1 = {"namespace": "shop", "pod": "api-7d4b9c8f6d-q9wzt", "container": "api"}
OTHER_NS = {"namespace": "staging", "pod": "api-7d4b9c8f6d-xk2lp", "container": "api"}
SIDECAR = {"namespace": "shop", "pod": "api-7d4b9c8f6d-xk2lp", "container": "envoy"}


def test_same_template_same_workload_is_one_group_across_pods() -> None:
    batch = Pipeline(rules=RULES).process(
        entries(
            [
                (API0, "dial tcp 10.0.0.1:5432: connect: connection refused"),
                (API1, "dial tcp 10.0.0.2:5432: connect: connection refused"),
                (OTHER_NS, "dial tcp 10.0.0.3:5432: connect: connection refused"),
                (SIDECAR, "dial tcp 10.0.0.4:5432: connect: connection refused"),
            ]
        )
    )
    assert batch.lines == 4 and len(batch.deltas) == 3
    shop = [d for d in batch.deltas.values() if d.namespace == "shop" and d.container == "api"]
    assert len(shop) == 1 and shop[0].count == 2 and set(shop[0].pods) == {API0["pod"], API1["pod"]}
    assert shop[0].workload == "api" and shop[0].rule == "connection-refused"
    assert batch.rule_hits == {"connection-refused": 4}


def test_counts_are_exact_and_keys_stable_across_order_and_restart() -> None:
    rng = random.Random(3)
    lines = [
        (API0, f"user {rng.randint(1, 10**6)} login failed from 10.1.{rng.randint(0, 255)}.{rng.randint(0, 255)}")
        for _ in range(300)
    ]
    lines += [(API0, f"payment {rng.randint(1, 10**6)} timed out after {rng.randint(1, 900)}ms") for _ in range(200)]
    shuffled = lines[:]
    rng.shuffle(shuffled)
    p1, p2 = Pipeline(rules=RULES), Pipeline(rules=RULES)
    b1, b2 = p1.process(entries(lines)), p2.process(entries(shuffled))
    p1.settle(b1)
    p2.settle(b2)
    assert sorted((k, d.count) for k, d in b1.deltas.items()) == sorted((k, d.count) for k, d in b2.deltas.items())
    assert sum(d.count for d in b1.deltas.values()) == 500 and len(b1.deltas) == 2
    restored = Pipeline(rules=RULES, fingerprinter=Fingerprinter.restore(p1.fingerprinter.snapshot()))
    b3 = restored.process(entries(lines[:50]))
    assert set(b3.deltas) <= set(b1.deltas)


def test_template_merges_fold_stored_groups_without_losing_counts() -> None:
    pipeline = Pipeline(rules=RULES)
    store = MemoryStore()
    # Two values at one position look like two different messages at first ...
    first = pipeline.process(
        entries([(API0, "cache shard alpha is unavailable"), (API0, "cache shard beta is unavailable")])
    )
    pipeline.settle(first)
    store.record(list(first.deltas.values()), now=T0 / 1e9)
    assert len(store.all_groups()) == 2
    # ... a third value shows the position varies: the groups become one, counts add up.
    second = pipeline.process(entries([(API0, "cache shard gamma is unavailable")]))
    pipeline.settle(second)
    assert second.aliases
    from sentinel.engine.pipeline import group_key

    store.apply_aliases(second.aliases, templates=pipeline.fingerprinter.templates(), key_fn=group_key)
    store.record(list(second.deltas.values()), now=T0 / 1e9)
    groups = store.all_groups()
    assert len(groups) == 1 and groups[0].count == 3
    assert "<*>" in groups[0].template
    old_ids = [d.key for d in first.deltas.values()]
    assert all(store.get_group(i) is not None and store.resolve_id(i) == groups[0].id for i in old_ids)


def test_the_same_statement_at_two_levels_is_two_groups() -> None:
    # log.Warn (a retry) and log.Error (the request failed) of one message: ranked apart, kept apart
    warn = '{"level":"warn","msg":"redis command failed","error":"redis: connection pool timeout","key":"cart:%d"}'
    error = '{"level":"error","msg":"redis command failed","error":"redis: connection pool timeout","key":"cart:%d"}'
    p = Pipeline(rules=RULES)
    lines = [(API0, warn % i) for i in range(3)] + [(API1, error % i) for i in range(2)]
    batch = p.process(entries(lines))
    groups = sorted((d.level, d.count, d.priority.value) for d in batch.deltas.values())
    assert groups == [("error", 2, "P2"), ("warning", 3, "P3")]
    # explain gives each line its own level's group
    for labels, line in ((API0, warn % 9), (API1, error % 9)):
        assert p.explain(entries([(labels, line)])[0]).group in batch.deltas


def test_explain_matches_process() -> None:
    p = Pipeline(rules=RULES)
    e = entries([(API0, '{"level":"error","msg":"Back-off restarting failed container api in pod api-1"}')])[0]
    x = p.explain(e)
    batch = p.process([e])
    assert x.group in batch.deltas and x.rule == "crashloop-backoff" and x.priority == "P1"


def test_group_takes_the_most_urgent_rule_whatever_the_line_order() -> None:
    from sentinel.config import parse_rules

    rules = parse_rules(
        {"rules": [{"name": "unavailable", "match": {"pattern": "status 503"}, "priority": "P1"}]}, source="inline"
    ).ruleset
    lines = ["GET /a returned status 404", "GET /b returned status 503", "GET /c returned status 503"]
    for order in (lines, lines[::-1], [lines[1], lines[0], lines[2]]):
        p = Pipeline(rules=rules)
        batch = p.process(entries([(API0, line) for line in order]))
        p.settle(batch)
        (delta,) = batch.deltas.values()
        assert (delta.rule, delta.priority.value, delta.count) == ("unavailable", "P1", 3)
        assert batch.rule_hits == {"unavailable": 2, "default": 1}
    # across polls too: a later, less urgent line does not downgrade the stored group
    store = MemoryStore()
    p = Pipeline(rules=rules)
    for line in (lines[1], lines[0]):
        b = p.process(entries([(API0, line)]))
        store.record(list(b.deltas.values()), now=T0 / 1e9)
    (group,) = store.all_groups()
    assert group.rule == "unavailable" and group.count == 2
