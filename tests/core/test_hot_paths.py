"""The fast forms of the hot paths give what their plain forms give (issue 12: speed, same results).

* ``RuleSet.classify`` (one RE2 set, per-level lists of pattern-less rules, per-rule checks) picks
  the rule that trying every rule in file order with ``Rule.matches`` picks.
* Each gate in ``sentinel.core.fingerprint`` finds something in every text its pattern matches,
  so a text that fails the gate has nothing for the pattern to mask.
* The literal-led quoted-word pattern masks exactly what its first form
  ``(?<![\\w"\\\\=])(\\\\?")...\\1`` masked.
* The piece mask started at the word of the first digit masks what ``_PIECE`` over the whole text
  masks.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import pytest

from sentinel.config import load_rules, parse_rules
from sentinel.core import fingerprint as fp
from sentinel.core.parsing import parse_line
from sentinel.core.rules import DEFAULT, LEVELS, Rule, RuleSet
from tests.bench.k8s_corpus.generate import generate, load_part


def first_match(rs: RuleSet, line: str, message: str, level: str, namespace: str, labels: Mapping[str, str]) -> Rule:
    for rule in rs.rules:
        if rule.matches(message, namespace=namespace, labels=labels, line=line, level=level):
            return rule
    return DEFAULT


MIXED: dict[str, Any] = {
    "rules": [
        {"name": "only-prod-oom", "match": {"pattern": "(?i)oom", "namespaces": ["prod"]}, "priority": "P1"},
        {"name": "fatal-level", "match": {"levels": ["fatal"]}, "priority": "P1"},
        {"name": "msg-timeout", "match": {"pattern": "(?i)timeout", "on": "message"}, "priority": "P3"},
        {"name": "db-keyword", "match": {"keywords": ["postgres", "mysql"]}, "priority": "P2"},
        {"name": "refused-error", "match": {"pattern": "(?i)refused", "levels": ["error"]}, "priority": "P2"},
        {"name": "web-label", "match": {"pattern": "(?i)fail", "labels": {"app": "web"}}, "priority": "P2"},
        {"name": "warn-or-unknown", "match": {"levels": ["warning", "unknown"]}, "priority": "P4"},
        {"name": "plain-error", "match": {"pattern": "(?i)error"}, "priority": "P3"},
        {"name": "any-level", "match": {"keywords": ["disk"]}, "priority": "P3"},
    ]
}

WORDS = ["OOM", "timeout", "postgres", "refused", "fail", "error", "disk", "ok", "level=error", "Timeout", "mysql"]


def mixed_cases(n: int = 3000) -> list[tuple[str, str, str, str, dict[str, str]]]:
    r = random.Random(12)
    cases = []
    for _ in range(n):
        line = " ".join(r.choice(WORDS) for _ in range(r.randint(0, 4)))
        message = " ".join(r.choice(WORDS) for _ in range(r.randint(0, 3))) if r.random() < 0.5 else line
        level = r.choice([*LEVELS, "", "notice"])
        cases.append(
            (line, message, level, r.choice(["prod", "dev", ""]), r.choice([{}, {"app": "web"}, {"app": "db"}]))
        )
    return cases


def test_classify_equals_trying_every_rule_in_order_on_a_mixed_file() -> None:
    rs = parse_rules(MIXED, source="mixed.yaml").ruleset
    assert rs._always and not rs._simple  # the paths under test: pattern-less rules, conditions
    picked = set()
    for line, message, level, namespace, labels in mixed_cases():
        got = rs.classify(line, message=message, level=level, namespace=namespace, labels=labels)
        assert got is first_match(rs, line, message, level, namespace, labels), (line, message, level)
        picked.add(got.name)
    assert picked == {r["name"] for r in MIXED["rules"]} | {"default"}  # every rule won somewhere


@pytest.mark.parametrize("path", ["config/rules.yaml", "tests/fixtures/upstream/upstream-rules.yaml"])
def test_classify_equals_trying_every_rule_in_order_on_the_corpus(path: str) -> None:
    rs = load_rules(path).ruleset
    for entry in generate(load_part("tune"), lines=3000):
        message, level, _subject = parse_line(entry.line)
        namespace = entry.labels.get("namespace", "")
        got = rs.classify(entry.line, message=message, level=level, namespace=namespace, labels=entry.labels)
        assert got is first_match(rs, entry.line, message, level, namespace, entry.labels), entry.line


def random_texts(pieces: list[str], n: int = 40_000, seed: int = 5) -> list[str]:
    r = random.Random(seed)
    return ["".join(r.choice(pieces) for _ in range(r.randint(0, 14))) for _ in range(n)]


GATED = [
    pytest.param(fp._HEX_COLON, fp._HEX_COLON_GATE, ["0", "a", "F", ":", "::", " ", "g", "0f"], id="hex-colon"),
    pytest.param(fp._DOTTED_PATH, fp._DOTTED_PATH_GATE, ["a", "-", ".", "/", " ", "$", "0", "."], id="dotted-path"),
    pytest.param(fp._POD, fp._POD_GATE, ["web", "-", "bcdfg", "x7k9q", "a", "0", "-", "hjklm"], id="pod"),
    pytest.param(
        fp._THREAD_BEFORE_LEVEL,
        fp._THREAD_BEFORE_LEVEL_GATE,
        ["[", "]", " ", "main", "INFO", " [t]", "] WARN", "x"],
        id="thread",
    ),
]


@pytest.mark.parametrize(("pattern", "gate", "pieces"), GATED)
def test_every_text_a_pattern_matches_passes_its_gate(pattern: Any, gate: Any, pieces: list[str]) -> None:
    matched = 0
    for text in random_texts(pieces):
        if pattern.search(text):
            matched += 1
            assert gate.search(text), text
    assert matched > 100  # the texts do exercise the pattern


FIRST_QUOTED_WORD = re.compile(r'(?<![\w"\\=])(\\?")(?=[^\s"\\]*[A-Za-z])[^\s"\\]{1,253}\1(?![\w"])')


def test_quoted_word_masks_what_its_first_form_masked() -> None:
    old_mask = "\\1" + fp._V + "\\1"
    texts = random_texts(["a", "B", "0", "\\", '"', "=", " ", "_", ".", "\n", fp._V, "é", 'x="v"', '\\"k\\"'])
    texts += ['"' + "a" * 253 + '"', '"' + "a" * 254 + '"', '\\"' + "a" * 253 + '\\"', 'say "hi" and \\"yo\\" "x y"']
    changed = 0
    for text in texts:
        new = fp._QUOTED_WORD.sub(fp._QUOTED_WORD_MASK, text)
        assert new == FIRST_QUOTED_WORD.sub(old_mask, text), text
        changed += new != text
    assert changed > 1000


def test_the_piece_mask_from_the_first_digit_masks_what_the_whole_text_masks() -> None:
    # normalised texts (ASCII digits are 0), with every delimiter, variables, a digit of another
    # script (Python's \d matches it), other whitespace and other non-ASCII letters
    pieces = [
        "a",
        "b0",
        "0",
        " ",
        "  ",
        "\t",
        ",",
        ":",
        ";",
        "=",
        "|",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "<",
        ">",
        '"',
        "'",
    ]
    pieces += [fp._V, "\u0663", "\u2003", "é", "-", "x", "word", "0x0f"]
    skipped = 0
    for text in random_texts(pieces):
        whole = fp._PIECE.sub(fp._V, text)
        assert fp._pieces(text) == whole, repr(text)
        i, j = text.find("0"), text.find(fp._V)
        first = min(k for k in (i, j, len(text)) if k >= 0)
        skipped += text.rfind(" ", 0, first) >= 0 and text[:first].isascii()
    assert skipped > 3000  # the texts do exercise the shortcut
