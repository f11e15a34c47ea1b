"""The pipeline's fast paths (per-form cache, per-stream form slots, digit-split rules, JSON skip)
against the plain per-line reference of test_pipeline.py, on adversarial lines and rule sets.

Exactness is the whole claim: groups, counts, the rule of every line (``rule_hits``), the rule of
each group, first/last seen, pods, minute counts, samples and messages must be what each line on
its own gives. The lines are drawn so that one form (a line with its digits zeroed) holds lines a
digit-sensitive rule tells apart, in every place and format a form can be cut from.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sentinel.engine.pipeline as pipeline_module
from sentinel.config import load_rules, parse_rules
from sentinel.core.model import LogEntry
from sentinel.core.parsing import parse_line
from sentinel.core.rules import RuleSet
from sentinel.engine.pipeline import Pipeline
from sentinel.errors import LokiError
from sentinel.sources.loki_json import FetchReport, _decode, _entries, parse_streams
from sentinel.store.tinydb import dumps
from tests.engine.test_pipeline import reference, summary

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_rules(ROOT / "config" / "rules.yaml").ruleset
UPSTREAM = load_rules(ROOT / "tests" / "fixtures" / "upstream" / "upstream-rules.yaml").ruleset
T0 = 1_795_826_344_000_000_000


def _rules(specs: list[dict[str, object]]) -> RuleSet:
    return parse_rules({"rules": specs}, source="inline").ruleset


def _p(name: str, priority: str, **match: object) -> dict[str, object]:
    return {"name": name, "priority": priority, "match": match}


# Bare patterns only (the set's own fast path, line_matcher), some telling digits apart.
BARE_DIGITS = _rules(
    [
        _p("unavailable", "P1", pattern="status 50[34]"),
        _p("brace", "P2", pattern="code{,5}"),  # RE2: the literal text "code{,5}"
        _p("flagged-count", "P2", pattern="a{(?i)3}"),  # RE2: the literal text "a{3}"
        _p("tls", "P2", pattern="x509"),
        _p("refused", "P3", pattern="refused"),
        _p("any-port", "P3", pattern=r"port \d+"),
        _p("seven", "P3", pattern="7$"),
        _p("not-one", "P4", pattern="id=[^1]"),
    ]
)
# Keywords, message rules, levels and blind rules mixed with digit-sensitive ones.
MIXED_DIGITS = _rules(
    [
        _p("kw-503", "P1", keywords=["http 503"]),
        _p("msg-port", "P1", pattern="^port 5432", on="message"),
        _p("unavailable", "P1", pattern="status 50[34]"),
        _p("tls-error-level", "P2", pattern="x509", levels=["error"]),
        _p("refused", "P2", pattern="refused"),
        _p("brace", "P2", pattern="code{,5}"),
        _p("kw-timeout", "P3", keywords=["timeout"]),
        _p("warn-any", "P3", levels=["warning"]),
        _p("any-port", "P3", pattern=r"port \d+"),
        _p("class-range", "P3", pattern="[ -(?i)9]z"),
        _p("seven", "P4", pattern="7$"),
    ]
)
# Rules that look at labels or namespaces: every line is judged in its stream.
CONTEXTUAL = _rules(
    [
        {"name": "db-port", "priority": "P1", "match": {"pattern": "port 5432", "labels": {"container": "db"}}},
        {"name": "shop-503", "priority": "P1", "match": {"pattern": "status 503", "namespaces": ["shop"]}},
        _p("refused", "P2", pattern="refused"),
        _p("any-port", "P3", pattern=r"port \d+"),
    ]
)
RULE_SETS = {
    "shipped": SHIPPED,
    "go-tool": UPSTREAM,
    "bare-digits": BARE_DIGITS,
    "mixed-digits": MIXED_DIGITS,
    "contextual": CONTEXTUAL,
}

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
PODS = ["api-7d4b9c8f6d-xk2lp", "api-7d4b9c8f6d-q9wzt", "db-0", "worker-5c9f8b7d6c-m4x7q"]


def _digits(rng: random.Random, width: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(width))


def _body(rng: random.Random, reach: int) -> str:
    """A message whose digits decide which digit-sensitive rule (if any) matches."""
    d = lambda w=1: _digits(rng, w)  # noqa: E731
    word = rng.choice(WORDS[:reach])
    return rng.choice(
        [
            f"GET /api/v{d()} status 50{d()} after {d(3)}ms",
            f"dial tcp 10.0.0.{d()}:{d(4)}: connect: connection refused",
            f"port {d(4)} refused for shard {word}",
            f"port {d(4)}",  # on: message rules see it at the start
            f"x{d(3)}: certificate signed by unknown authority",
            f"http {d(3)} from upstream {word}",
            f"code{{,{d()}}} returned by {word}",
            f"a{{{d()}}} then {d()}z",
            f"job {word} finished with id={d()}",
            f"counter at {d(2)}",
            f"request timeout after {d(2)}s on {word}",
            f"cache shard {word} is unavailable",
            "context deadline exceeded",
            f"caf\u00e9 {d(2)} \u0663\u0664 fail\u00e9 {d()}",  # non-ASCII, Arabic-Indic digits (never zeroed)
        ]
    )


def _line(rng: random.Random, reach: int) -> str:
    """The body in one of the formats a form is cut from (or must not be), with stray whitespace."""
    body = _body(rng, reach)
    d = lambda w=1: _digits(rng, w)  # noqa: E731
    shape = rng.randrange(12)
    if shape == 0:
        line = f"E0601 10:00:0{d()}.{d(6)}       1 ctl.go:{d(2)}] {body}"
    elif shape == 11:  # the message also in the header when both digits are one: no cut from that line
        line = f"E0601 10:00:00.000000       1 port 543{d()}] port 543{rng.choice('22223')}"
    elif shape == 1:
        level = rng.choice(["error", "warn", "info", f"lvl{d()}"])  # a level with a digit is never cut
        line = f'level={level} msg="{body}" ts=2026-01-0{d()}T00:00:00Z'
    elif shape == 2:
        line = f'level=error msg="{body}" err="code {d()}"'  # msg and err: compared, digits and all
    elif shape == 3:
        line = f"2026-01-0{d()}T10:00:{d(2)}Z [{d(4)}] ERROR: {body}"
    elif shape == 4:
        line = f'{{"level":"error","msg":"{body}","n":{d(3)}}}'
    elif shape == 5:
        line = f'   {{"level":"warning","msg":"{body}"}}'  # JSON after blanks: zeroed, never cut
    elif shape == 6:
        pod = rng.choice(PODS[:2])
        line = (
            f'{{"kind":"Event","type":"Warning","reason":"BackOff","message":"{body}",'
            f'"involvedObject":{{"kind":"Pod","namespace":"shop","name":"{pod}"}}}}'
        )
    elif shape == 7:
        line = f"{body}\n\tat com.example.Foo.bar(Foo.java:{d(2)})\n"
    elif shape == 8:
        line = f"{body} path C:\\\\tmp\\\\{d()}"  # backslashes: parsed in full
    elif shape == 9:
        line = f"[WARN] {body}"
    else:
        line = body
    pad = rng.randrange(7)
    if pad == 1:
        line = "  " + line
    elif pad == 2:
        line = line + " \t"
    elif pad == 3:
        line = "\u00a0" + line + "\u2003"  # Unicode blanks: str.strip() takes them
    elif pad == 4:
        line = "\n" + line + "\r\n"  # newlines only at the ends: stripped, the line is still cut
    elif pad == 5:
        line = line + " \ud800"  # a lone surrogate, as json decodes one from Loki's body
    return line


def _pages(seed: int, n_pages: int, per_page: int, *, streams: int = 6) -> list[list[LogEntry]]:
    rng = random.Random(seed)
    labels_of = [
        {
            "namespace": rng.choice(["shop", "staging"]),
            "pod": rng.choice(PODS),
            "container": rng.choice(["api", "db", "envoy"]),
        }
        for _ in range(streams)
    ]
    pages: list[list[LogEntry]] = []
    t = T0
    pool: list[str] = []  # exact repeats and near repeats
    for page_no in range(n_pages):
        reach = 2 + page_no  # one more word each page: templates merge late, mid-batch
        page = []
        for _ in range(per_page):
            t += rng.randint(0, 30_000_000_000)
            if pool and rng.random() < 0.3:
                line = rng.choice(pool)
            else:
                line = _line(rng, min(reach, len(WORDS)))
                pool.append(line)
            items = list(rng.choice(labels_of).items())
            if rng.random() < 0.2:
                rng.shuffle(items)  # the same labels in another order: another stream object, the same groups
            labels = dict(items)  # a fresh dict, as each Loki page brings
            page.append(LogEntry(t, labels, line))
        pages.append(page)
    return pages


def check_exact(rules: RuleSet, pages: list[list[LogEntry]], pipeline: Pipeline | None = None) -> None:
    """``pages`` into one batch equal the plain reference, field by field, and the rule of each line."""
    p = pipeline or Pipeline(rules=rules)
    batch = None
    for page in pages:
        batch = p.process(page, into=batch)
    assert batch is not None
    want = reference([rules] * len(pages), pages)
    got = summary(batch)
    assert got.keys() == want.keys()
    for key, (count, rule, first, last, pods, minutes, lines) in want.items():
        g = got[key]
        assert g[:6] == (count, rule, first, last, pods, minutes), (key, g[:6], (count, rule, first, last))
        assert g[6] <= lines  # samples are lines of the group
        d = batch.deltas[key]
        assert d.message in {parse_line(line)[0] for line in lines}, (d.message, lines)
        assert len(d.samples) == min(5, count)  # every line offered, up to five kept
    every = [e for page in pages for e in page]
    per_line = Counter(
        rules.classify(
            e.line,
            message=parse_line(e.line)[0],
            level=parse_line(e.line)[1],
            namespace=e.labels.get("namespace", ""),
            labels=e.labels,
        ).name
        for e in every
    )
    assert batch.rule_hits == dict(per_line)
    assert batch.lines == len(every)


@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_adversarial_pages_equal_the_plain_reference(name: str) -> None:
    rules = RULE_SETS[name]
    for seed in range(3):
        check_exact(rules, _pages(seed, n_pages=4, per_page=500))


def test_the_digit_rule_sets_exercise_the_fast_paths() -> None:
    """The rule sets above are what they are meant to be (else the test above proves less)."""
    assert BARE_DIGITS.line_matcher() is not None and MIXED_DIGITS.line_matcher() is None
    for rules in (BARE_DIGITS, MIXED_DIGITS):
        split = rules.digit_split()
        assert split.sensitive is not None and len(split.blind) > 0
        names = {r.name for r in split.sensitive.rules}
        assert {"unavailable", "brace", "seven"} <= names
    # lines of one form that the brace rule tells apart, each in the form's first place
    p = Pipeline(rules=BARE_DIGITS)
    b = p.process([LogEntry(T0, {"pod": "a"}, "code{,0} x"), LogEntry(T0 + 1, {"pod": "a"}, "code{,5} x")])
    assert b.rule_hits == {"default": 1, "brace": 1}
    assert len(p._forms) == 1  # one form: the second line was judged as a line of a known form


@pytest.mark.parametrize("name", ["bare-digits", "mixed-digits", "contextual", "shipped"])
def test_tiny_cache_and_slot_limits_change_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # every cache cleared again and again mid-batch: forms, lines, cuts, slots, group keys
    monkeypatch.setattr(pipeline_module, "CACHE_LIMIT", 3)
    monkeypatch.setattr(pipeline_module, "SLOTS_LIMIT", 4)
    monkeypatch.setattr(pipeline_module, "KEYS_PER_STREAM_LIMIT", 2)
    rules = RULE_SETS[name]
    p = Pipeline(rules=rules)
    assert p._parser._limit == 3
    check_exact(rules, _pages(11, n_pages=3, per_page=300), p)


def test_one_pipeline_over_many_batches_equals_the_reference() -> None:
    """The caches (forms, lines, cuts) outlive a batch: batch after batch on one pipeline, each
    line's rule is its own, and the batches' deltas, keyed by the final templates, add up to the
    reference over all lines."""
    from sentinel.engine.pipeline import group_key

    rules = MIXED_DIGITS
    p = Pipeline(rules=rules)
    pages = _pages(100, n_pages=5, per_page=400)
    kept = []
    for page in pages:
        batch = p.process(page)
        per_line = Counter(
            rules.classify(
                e.line, message=parse_line(e.line)[0], level=parse_line(e.line)[1], namespace=e.labels["namespace"]
            ).name
            for e in page
        )
        assert batch.rule_hits == dict(per_line)
        kept.extend(batch.deltas.values())
    urgency = {r.name: (r.priority.rank, i) for i, r in enumerate(rules.rules)}
    urgency["default"] = (9, len(rules.rules))
    got: dict[str, list[object]] = {}
    for d in kept:
        f = p.fingerprinter.peek(d.message)  # the template the message ends with
        key = group_key(d.namespace, d.workload, d.container, f.key, d.level)
        g = got.setdefault(key, [0, d.rule, d.first_seen, d.last_seen, set(), Counter()])
        g[0] += d.count  # type: ignore[operator]
        if urgency[d.rule] < urgency[g[1]]:  # type: ignore[index]
            g[1] = d.rule
        g[2], g[3] = min(g[2], d.first_seen), max(g[3], d.last_seen)  # type: ignore[call-overload]
        g[4] |= set(d.pods)  # type: ignore[operator]
        g[5].update(d.minute_counts)  # type: ignore[attr-defined]
    want = reference([rules] * len(pages), pages)
    assert got.keys() == want.keys()
    for key, (count, rule, first, last, pods, minutes, _lines) in want.items():
        assert tuple(got[key][:5]) == (count, rule, first, last, pods), key
        assert dict(got[key][5]) == minutes  # type: ignore[call-overload]


FORM_TEMPLATES = [
    "status 50{} at {}",
    "port {}{}{}{}",
    "code{{,{}}} x{}",
    "a{{{}}} y {}z",
    "  id={} tail {}  ",
    'level=error msg="port {}{}{}{} refused {}"',
    "E0601 10:00:00.000000       1 x.go:1] http 50{} id={}",
    "[WARN] x50{} status 50{}",
    "E0601 10:00:00.000000       1 port 543{}] port 543{}",  # the message twice when both digits are one
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(RULE_SETS)),
    st.lists(
        st.tuples(
            st.sampled_from(FORM_TEMPLATES),
            st.lists(st.sampled_from("0123456789"), min_size=6, max_size=6),
            st.integers(0, 2),  # stream
            st.integers(0, 90),  # seconds later
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_lines_of_few_forms_in_any_order(name: str, drawn: list[tuple[str, list[str], int, int]]) -> None:
    """Few forms, many digit choices: the first line of a form decides its cut and its blind rule,
    later lines of it must still get their own digit-sensitive rule, in any stream and order."""
    streams = [{"namespace": "shop", "pod": "db-0", "container": "db"}, {"namespace": "staging", "pod": "api-1"}, {}]
    t = T0
    page = []
    for template, digits, stream, later in drawn:
        t += later * 1_000_000_000
        page.append(LogEntry(t, dict(streams[stream]), template.format(*digits)))
    rules = RULE_SETS[name]
    check_exact(rules, [page[: len(page) // 2], page[len(page) // 2 :]])


# --- the decoders in front of and behind the pipeline: orjson first, json's result exactly -----------


def _loki_body(stream: str, values: str) -> bytes:
    return (
        '{"status":"success","data":{"resultType":"streams","result":[{"stream":'
        + stream
        + ',"values":'
        + values
        + "}]}}"
    ).encode()


def _json_only(body: bytes) -> tuple[object, FetchReport]:
    """What parse_streams gives when json decodes the body (its path for what orjson refuses)."""
    report = FetchReport()
    try:
        out: object = [(e.ts_ns, dict(e.labels), e.line) for e in _entries(_decode(body), report)]
    except LokiError as err:
        out = ("LokiError", str(err))
    return out, report


def _fast(body: bytes) -> tuple[object, FetchReport]:
    report = FetchReport()
    try:
        out: object = [(e.ts_ns, dict(e.labels), e.line) for e in parse_streams(body, report)]
    except LokiError as err:
        out = ("LokiError", str(err))
    return out, report


def test_parse_streams_reads_numbers_beyond_64_bits_as_json_does() -> None:
    # orjson reads an integer literal beyond 64 bits as a float: 2**64 + 1 would become 2**64
    for ts in ("18446744073709551617", "-9223372036854775809", "123456789012345678901234567890"):
        body = _loki_body('{"app":"a"}', f'[[{ts},"x"]]')
        assert _fast(body) == _json_only(body), ts
        assert _fast(body)[0] == [(int(ts), {"app": "a"}, "x")]


def test_parse_streams_refuses_hostile_bodies_with_one_line_errors() -> None:
    for body in (
        _loki_body('{"app":"a"}', '[[1e400,"x"]]'),  # a timestamp json reads as infinity
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than json's recursion
    ):
        with pytest.raises(LokiError) as err:
            parse_streams(body)
        assert "\n" not in str(err.value) and str(err.value).startswith("Loki answered with"), str(err.value)[:200]


_LABEL_VALUES = st.one_of(
    st.text(max_size=6),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(  # mostly strings (orjson's own path), sometimes values json must coerce
                st.dictionaries(st.sampled_from(["app", "pod", "namespace", "x"]), st.text(max_size=6), max_size=3),
                st.dictionaries(st.sampled_from(["app", "pod", "namespace", "x"]), _LABEL_VALUES, max_size=3),
            ),
            st.lists(
                st.tuples(
                    st.one_of(
                        st.integers(min_value=0, max_value=2**66).map(str),
                        st.integers(min_value=-(2**66), max_value=2**66),
                        st.sampled_from([2**64 + 1, -(2**63) - 1, 7]),
                    ),
                    st.text(max_size=8),  # lone surrogates included: orjson refuses, json reads them
                ),
                max_size=4,
            ),
        ),
        max_size=3,
    ),
    st.booleans(),
)
def test_parse_streams_equals_its_json_path(
    streams: list[tuple[dict[str, object], list[tuple[object, str]]]], ascii_only: bool
) -> None:
    import json

    doc = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [{"stream": labels, "values": [list(v) for v in values]} for labels, values in streams],
        },
    }
    body = json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    fast, fast_report = _fast(body)
    slow, slow_report = _json_only(body)
    assert fast == slow
    assert fast_report == slow_report


_JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-(2**70), 2**70)), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_JSONISH)
def test_store_dumps_reads_back_as_json_dumps(value: object) -> None:
    import json

    written = dumps(value)
    assert isinstance(written, bytes)
    assert json.loads(written) == json.loads(json.dumps(value, separators=(",", ":")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=-(2**70), max_value=2**70), min_size=1, max_size=6))
def test_minute_counts_for_any_timestamp(stamps: list[int]) -> None:
    """The minute of a line without a division by 60e9: equal to ``ts_ns // 60e9`` for every
    integer the source can give (negative, beyond 64 bits, on a minute's edge)."""
    edges = [s - s % 60_000_000_000 + k for s in stamps for k in (-1, 0, 1)]
    page = [LogEntry(ts, {"pod": "db-0"}, "port 5432 refused") for ts in stamps + edges]
    check_exact(BARE_DIGITS, [page])
