"""The pipeline: grouping by namespace + workload + container + template; exact counts; merges settle."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sentinel.config import load_rules
from sentinel.core.fingerprint import Fingerprinter
from sentinel.core.model import LogEntry
from sentinel.core.rules import RuleSet
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


# --- the hot path against a plain reference ---------------------------------------------------------


def reference(rules_of: list[object], pages: list[list[LogEntry]]) -> dict[str, tuple[object, ...]]:
    """Each line on its own, the obvious way, keyed by the final (batch) templates: group key ->
    (count, rule, first seen, last seen, pods, minute counts, lines). ``rules_of[i]`` classifies page i."""
    from sentinel.core.parsing import parse_line, workload_from_pod, workload_of
    from sentinel.engine.pipeline import group_key

    every = [e for page in pages for e in page]
    fingerprinter = Fingerprinter()
    parsed = [parse_line(e.line) for e in every]
    for message, _level, _subject in parsed:
        fingerprinter.fingerprint(message)  # all lines first: the templates they end with
    out: dict[str, list[object]] = {}
    i = 0
    for ruleset, page in zip(rules_of, pages, strict=True):
        rules = ruleset.rules  # type: ignore[attr-defined]
        urgency = {rule.name: (rule.priority.rank, r) for r, rule in enumerate(rules)}
        urgency["default"] = (9, len(rules))
        for e in page:
            message, level, subject = parsed[i]
            i += 1
            rule = ruleset.classify(  # type: ignore[attr-defined]
                e.line, message=message, level=level, namespace=e.labels.get("namespace", ""), labels=e.labels
            )
            key_of_template = fingerprinter.fingerprint(message).key
            if subject is not None:
                namespace, workload, pod = subject
                if pod:
                    workload = workload_from_pod(pod, namespace=namespace) or workload
                key = group_key(namespace, workload, "", key_of_template, level)
            else:
                pod = e.labels.get("pod", "")
                key = group_key(
                    e.labels.get("namespace", ""),
                    workload_of(e.labels),
                    e.labels.get("container", ""),
                    key_of_template,
                    level,
                )
            ts = e.ts_ns / 1e9
            g = out.setdefault(key, [0, rule.name, ts, ts, set(), {}, set()])
            g[0] += 1  # type: ignore[operator]
            if urgency[rule.name] < urgency[g[1]]:  # type: ignore[index]
                g[1] = rule.name
            g[2], g[3] = min(g[2], ts), max(g[3], ts)  # type: ignore[call-overload]
            if pod:
                g[4].add(pod)  # type: ignore[attr-defined]
            minute = e.ts_ns // 60_000_000_000
            g[5][minute] = g[5].get(minute, 0) + 1  # type: ignore[attr-defined]
            g[6].add(e.line)  # type: ignore[attr-defined]
    return {k: tuple(v) for k, v in out.items()}


def mixed_pages(seed: int, n_pages: int = 6, per_page: int = 400) -> list[list[LogEntry]]:
    """Pages of several streams with exact repeats, lines whose templates merge late (a third value
    at one position, only in a later page), Kubernetes events about pods, and fresh label dicts
    on every page (as every Loki page brings)."""
    rng = random.Random(seed)
    pods = ["api-7d4b9c8f6d-xk2lp", "api-7d4b9c8f6d-q9wzt", "db-0", "worker-5c9f8b7d6c-m4x7q"]
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    reach = [2]  # how many words the shard message draws from: one more each page
    shapes = [
        lambda: f"dial tcp 10.0.{rng.randint(0, 3)}.{rng.randint(1, 9)}:5432: connect: connection refused",
        lambda: f"cache shard {rng.choice(words[: reach[0]])} is unavailable",
        lambda: "context deadline exceeded",  # one exact line, repeated
        lambda: f"redis error: dial tcp 10.0.0.{rng.randint(1, 9)}:6379: i/o timeout",  # several rules match
        lambda: f"E0601 10:00:0{rng.randint(0, 9)}.123456       1 ctl.go:42] sync {rng.choice(words)} failed: timeout",
        lambda: (
            '{"kind":"Event","type":"Warning","reason":"BackOff","message":"Back-off restarting failed container",'
            f'"involvedObject":{{"kind":"Pod","namespace":"shop","name":"{rng.choice(pods[:2])}"}}}}'
        ),
        lambda: f'level=error msg="payment {rng.randint(1, 5)} declined" err="card {rng.choice(words)} refused"',
    ]
    pages = []
    t = T0
    for page_no in range(n_pages):
        reach[0] = 2 + page_no
        page = []
        for _ in range(per_page):
            t += rng.randint(0, 40_000_000_000)  # minutes go by; some lines share a timestamp
            pod = rng.choice(pods)
            labels = {"namespace": rng.choice(["shop", "shop", "staging"]), "pod": pod, "container": pod.split("-")[0]}
            page.append(LogEntry(t, dict(labels), rng.choice(shapes)()))
        pages.append(page)
    return pages


def summary(batch: object) -> dict[str, tuple[object, ...]]:
    return {
        k: (d.count, d.rule, d.first_seen, d.last_seen, set(d.pods), dict(d.minute_counts), set(d.samples))
        for k, d in batch.deltas.items()  # type: ignore[attr-defined]
    }


UPSTREAM = load_rules(ROOT / "tests" / "fixtures" / "upstream" / "upstream-rules.yaml").ruleset


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param(RULES, id="shipped-rules"),
        pytest.param(UPSTREAM, id="go-tool-rules"),  # bare patterns only: the set's own fast path
    ],
)
def test_pages_into_one_batch_equal_the_plain_reference(rules: RuleSet) -> None:
    assert (rules.line_matcher() is None) == (rules is RULES)
    for seed in range(4):
        pages = mixed_pages(seed)
        p = Pipeline(rules=rules)
        batch = None
        for page in pages:
            batch = p.process(page, into=batch)
        assert batch is not None and p.fingerprinter.merges  # the late merges happened mid-batch
        want = reference([rules] * len(pages), pages)
        got = summary(batch)
        assert got.keys() == want.keys()
        for key, (count, rule, first, last, pods, minutes, lines) in want.items():
            g = got[key]
            assert g[:6] == (count, rule, first, last, pods, minutes), key
            assert g[6] <= lines and len(g[6]) <= 5  # samples are lines of the group
        assert batch.lines == sum(map(len, pages))
        assert sum(batch.rule_hits.values()) == batch.lines


def test_a_batch_filled_by_two_pipelines_uses_each_ones_rules() -> None:
    from dataclasses import replace

    from sentinel.core.model import Priority
    from sentinel.core.rules import RuleSet

    # a reload between two pages of one poll: the same rules, the other way round and all P1
    other = RuleSet([replace(r, priority=Priority.P1) for r in RULES.rules[::-1]])
    pages = mixed_pages(7, n_pages=2)
    first = Pipeline(rules=RULES)
    batch = first.process(pages[0])
    second = first.with_rules(other)
    second.process(pages[1], into=batch)
    want = reference([RULES, other], pages)
    got = summary(batch)
    assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in want.items()}
    unchanged = reference([RULES, RULES], pages)  # had the batch kept the first pipeline's rules
    assert {k: v[1] for k, v in got.items()} != {k: v[1] for k, v in unchanged.items()}


def test_a_batch_keeps_a_bounded_number_of_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentinel.engine.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "SLOTS_LIMIT", 50)
    pages = mixed_pages(11, n_pages=3)
    p = Pipeline(rules=RULES)
    batch = None
    for page in pages:
        batch = p.process(page, into=batch)
        seen = batch._seen
        assert seen is not None and seen.slots <= 50
        assert sum(len(by_line) + len(by_form) for _s, _t, by_line, by_form in seen.streams.values()) <= 50
    want = reference([RULES] * len(pages), pages)
    assert {k: v[:6] for k, v in summary(batch).items()} == {k: v[:6] for k, v in want.items()}


def test_rules_that_tell_digits_apart_are_judged_on_every_line_of_a_form() -> None:
    """Lines of one form (equal once their digits are zeroed) share their message, level and
    template, but not always their rule: " 503 " is not " 200 ", "x509" is not "x123"."""
    from collections import Counter

    from sentinel.config_rules import parse_rules

    rules = parse_rules(
        {
            "rules": [
                {"name": "upstream-5xx", "priority": "P1", "match": {"pattern": '" 50[234] '}},
                {"name": "x509", "priority": "P2", "match": {"pattern": "x509"}},
                {"name": "status-429", "priority": "P2", "match": {"keywords": ["status 429"]}},
                {"name": "connection", "priority": "P3", "match": {"pattern": "(?i)connection refused"}},
                {"name": "generic", "priority": "P3", "match": {"pattern": r"(?i)\berror\b"}},
            ]
        },
        source="digit-rules",
    ).ruleset
    split = rules.digit_split()
    assert split.sensitive is not None and {r.name for r in split.sensitive.rules} == {
        "upstream-5xx",
        "x509",
        "status-429",
    }
    rng = random.Random(3)
    shapes = [
        lambda: f'10.0.0.{rng.randint(1, 9)} - - "GET /api HTTP/1.1" {rng.choice([200, 502, 503, 404, 504])} 12 error',
        lambda: f"tls: x{rng.choice([509, 123, 500])}: certificate error {rng.randint(1, 99)}",
        lambda: f"request failed with status {rng.choice([429, 500, 428])} error",
        lambda: f"dial tcp 10.0.0.{rng.randint(1, 9)}:5432: connect: connection refused",
    ]
    pages = []
    t = T0
    for _ in range(3):
        page = []
        for _ in range(300):
            t += rng.randint(0, 2_000_000_000)
            page.append(LogEntry(t, dict(API0), rng.choice(shapes)()))
        pages.append(page)
    p = Pipeline(rules=rules)
    batch = None
    for page in pages:
        batch = p.process(page, into=batch)
    assert batch is not None
    every = [e for page in pages for e in page]
    want_hits = Counter(rules.classify(e.line, message=e.line, level="error").name for e in every)
    assert {"upstream-5xx", "x509", "status-429", "generic", "connection"} <= want_hits.keys()
    assert batch.rule_hits == dict(want_hits)
    want = reference([rules] * len(pages), pages)
    assert {k: v[:6] for k, v in summary(batch).items()} == {k: v[:6] for k, v in want.items()}
    assert len(p._forms) < len({e.line for e in every}) / 5  # the lines did share forms
