"""Which rules can tell one digit from another (digit_blind), and the digit-blind superset of those
that can (digit_superset): the pipeline judges a rule once per form of line (the line with its
digits zeroed) only where these say that is exact.

Both are checked against RE2 itself on the patterns of the shipped and the Go tool's rule files,
on generated patterns, and on texts whose digits are drawn again and again.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.config import load_rules
from sentinel.core.fingerprint import zero_digits
from sentinel.core.model import Priority
from sentinel.core.rules import MAX_RULES, DigitSplit, Rule, RuleSet, digit_blind, digit_superset

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_rules(ROOT / "config" / "rules.yaml").ruleset
UPSTREAM = load_rules(ROOT / "tests" / "fixtures" / "upstream" / "upstream-rules.yaml").ruleset
DIGIT = re.compile("[0-9]")


def test_blind_and_sensitive_patterns() -> None:
    blind = [r"HikariPool-\d+ - Connection", r"(?i)\berror\b", r"[^0-9]x", r"a{3}", r"[0-9a-f]+ at term", r"\w+\.\w+"]
    sensitive = [r'" 50[234] ', r"x509", r"[^1]", r"5[0-9][0-9]", r"\x31", r"\pN", r"(a)\1", r"\Q1\E", r"[1-9]"]
    assert all(digit_blind(p) for p in blind)
    assert not any(digit_blind(p) for p in sensitive)


def test_superset_examples() -> None:
    assert digit_superset(r"x509") == r"x\d\d\d"
    assert digit_superset(r'" 50[234] (?:UF|UT)') == r'" \d\d[2340-9] (?:UF|UT)'
    assert digit_superset(r"a{3}b1") == r"a{3}b\d"  # a count is not a digit of the text
    assert digit_superset(r"[^1]x") == r"[\s\S]x"
    assert digit_superset(r"(?P<n1>a)2") == r"(?P<n1>a)\d"
    for beyond in (r"\x31", r"[\x31]", r"\Q1\E", r"\p{Nd}", r"\1"):
        assert digit_superset(beyond) is None


def texts_for(pattern: str, rng: random.Random) -> list[str]:
    """Texts with digits in them that the pattern matches or nearly matches."""
    base = [
        'GET /x HTTP/1.1" 503 UF 12 "-"',
        'GET /x HTTP/1.1" 200 - 3',
        "x509: certificate signed by unknown authority 2",
        "HikariPool-1 - Connection is not available, request timed out after 30000ms",
        "Node.js v18.19.0",
        "lost leader 8e9e05c52164694d at term 5",
        '"reason":"FailedMount" 0/9 nodes are available: 3 Insufficient cpu',
        "limiting requests, excess: 10.500 by zone 429",
        " 429 Too Many Requests",
        "error 1 x 22 y 333",
    ]
    out = []
    for text in base:
        out.append(text)
        out += [DIGIT.sub(lambda _m: str(rng.randrange(10)), text) for _ in range(6)]
    return out


def every_pattern() -> list[str]:
    return [r.pattern for rs in (SHIPPED, UPSTREAM) for r in rs.rules if r.pattern]


def test_on_the_rule_files_blind_means_blind_and_the_superset_holds() -> None:
    rng = random.Random(5)
    checked = 0
    for pattern in every_pattern():
        rx = re2.compile(pattern)
        texts = texts_for(pattern, rng)
        if digit_blind(pattern):
            for text in texts:
                assert bool(rx.search(text)) == bool(rx.search(zero_digits(text))), (pattern, text)
            continue
        superset = digit_superset(pattern)
        assert superset is not None, pattern  # every sensitive pattern of our files has one
        assert digit_blind(superset)
        general = re2.compile(superset)
        for text in texts:
            if rx.search(text):
                checked += 1
                assert general.search(zero_digits(text)), (pattern, superset, text)
    assert checked > 10


PIECES = [
    "a",
    "1",
    "5",
    "0",
    r"\d",
    "[0-4]",
    "[^3]",
    "[a1]",
    "[^a]",
    ".",
    "x",
    "(?:1|b)",
    "{2}",
    r"\b",
    "+",
    "?",
    "[0-9]",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=7), st.text(alphabet="ab1x0532 ", max_size=12))
def test_generated_patterns(pieces: list[str], text: str) -> None:
    pattern = "".join(pieces)
    try:
        rx = re2.compile(pattern)
    except re2.error:
        return
    if digit_blind(pattern):
        assert bool(rx.search(text)) == bool(rx.search(zero_digits(text))), (pattern, text)
    superset = digit_superset(pattern)
    if superset is not None and rx.search(text):
        assert re2.compile(superset).search(zero_digits(text)), (pattern, superset, text)


def test_the_split_of_a_rule_set() -> None:
    split = SHIPPED.digit_split()
    assert split.sensitive is not None
    names = {r.name for r in split.sensitive.rules}
    assert {r.name for r in split.blind.rules} | names == {r.name for r in SHIPPED.rules}
    assert not names & {r.name for r in split.blind.rules}
    assert all(not digit_blind(r.pattern) for r in split.sensitive.rules)
    assert UPSTREAM.digit_split().sensitive is not None  # tls-error's "x509"
    rules = RuleSet([Rule(name="plain", priority=Priority.P2, pattern="refused", regex=re2.compile("refused"))])
    assert rules.digit_split().sensitive is None and rules.digit_split().blind is rules
    # a keyword with a digit is judged on every line: no superset can stand for it
    keyworded = RuleSet([Rule(name="k", priority=Priority.P2, keywords=("http 503",))])
    assert keyworded.digit_split().first_possible("anything") == 0
    assert UPSTREAM.digit_split().first_possible("connection refused") == MAX_RULES
    position = [r.name for r in UPSTREAM.rules].index("tls-error")
    assert UPSTREAM.digit_split().first_possible("x000: certificate signed by unknown authority") == position
    # the earliest position first_possible can give, whatever the line (the pipeline skips the scan
    # when the first digit-blind rule comes before it)
    assert UPSTREAM.digit_split().earliest == position
    assert keyworded.digit_split().earliest == 0
    assert DigitSplit(rules, None).earliest == MAX_RULES
    # each line-pattern slot names its rule's position, or no rule for a digit-sensitive one
    assert UPSTREAM.digit_split().blind_slots == tuple(
        len(UPSTREAM.rules) if i == position else i for i in range(len(UPSTREAM.rules))
    )


# --- adversarial: RE2 syntax Python's parser reads another way ----------------------------------

# Each pattern tells digits apart in RE2: it matches the text but not the text with its digits zeroed.
RE2_LITERAL_DIGITS = [
    (r"code{,5}", "code{,5}"),  # RE2: "{,5}" is literal text (a count needs a digit after "{"); Python: {0,5}
    (r"x{,3}y", "x{,3}y"),
    (r"retry{,12}", "retry{,12}"),
    (r"a{(?i)3}", "a{3}"),  # a flag group between "{" and "3}": no count in RE2
    (r"a{(?s),2}", "a{,2}"),
    (r"[ -(?i)9]", "9"),  # in a class "(?i)" is four members, and " -(" a range ending at "("
]


def test_re2_literal_braces_and_flag_groups_are_not_blind() -> None:
    for pattern, text in RE2_LITERAL_DIGITS:
        rx = re2.compile(pattern)
        assert rx.search(text) and not rx.search(zero_digits(text)), pattern  # RE2 itself tells them apart
        assert not digit_blind(pattern), pattern
        superset = digit_superset(pattern)
        assert superset is not None and digit_blind(superset), pattern
        assert re2.compile(superset).search(zero_digits(text)), (pattern, superset)


ADVERSARIAL_PIECES = [
    "a",
    "1",
    "5",
    r"\d",
    "{",
    "}",
    ",",
    "{,2}",
    "{2}",
    "{1,}",
    "(?i)",
    "(?s)",
    "(?U)",
    "(?i-s)",
    "[",
    "]",
    "[ -(",
    ")-9]",
    "[[:digit:]]",
    "[[:alpha:]",
    "[^",
    "-",
    "(?P<g>",
    "(",
    ")",
    "|",
    "*",
    r"\b",
    r"\{",
    "\\",
    r"\z",
    r"\C",
    r"\061",
    r"\0",
    ".",
    "?",
]


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(st.sampled_from(ADVERSARIAL_PIECES), min_size=1, max_size=8),
    st.lists(st.text(alphabet="a15{},( -9\t", max_size=10), min_size=1, max_size=4),
)
def test_generated_re2_syntax_against_re2(pieces: list[str], texts: list[str]) -> None:
    """Patterns RE2 takes, built from the pieces Python reads another way; texts drawn from their
    characters. A blind pattern matches a text iff it matches the zeroed text; a superset matches
    the zeroed text of every text the pattern matches."""
    pattern = "".join(pieces)
    try:
        rx = re2.compile(pattern)
    except re2.error:
        return
    superset = digit_superset(pattern)
    general = re2.compile(superset) if superset is not None else None
    blind = digit_blind(pattern)
    if superset is not None:
        assert digit_blind(superset), (pattern, superset)
    for drawn in texts:
        # the pattern's own text is the likeliest to match it literally
        for text in (drawn, pattern.replace("\\", ""), drawn + "".join(pieces[:2])):
            hit = bool(rx.search(text))
            if blind:
                assert hit == bool(rx.search(zero_digits(text))), (pattern, text)
            if general is not None and hit:
                assert general.search(zero_digits(text)), (pattern, superset, text)
