"""LineParser parses each statement once: on every line it answers what parse_line answers.

Lines of real formats (the tuning corpus, the benchmark's Kubernetes mix, Loghub) are taken with
their digits redrawn many times, so that a cut learned from one line is applied to its siblings;
and generated lines aim at what would break it (a logfmt error equal to its message, a level that
holds digits, a message that occurs twice in its line, escapes, multi-line entries, JSON).
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.core.fingerprint import zero_digits
from sentinel.core.parsing import LineParser, parse_line

ROOT = Path(__file__).resolve().parents[2]
DIGIT = re.compile(r"[0-9]")


def redraw(line: str, rng: random.Random) -> str:
    return DIGIT.sub(lambda _m: str(rng.randrange(10)), line)


def check(parser: LineParser, line: str) -> bool:
    """Whether the parser answered parse_line's answer; True when it used a cut (zeroed known)."""
    message, level, subject, zeroed = parser.parse(line)
    assert (message, level, subject) == parse_line(line), line
    if zeroed is not None:
        assert zeroed == zero_digits(message), line
    return zeroed is not None


def real_lines() -> list[str]:
    from sentinel.sources.loki_json import parse_streams
    from tests.bench.k8s_corpus.generate import generate, load_part
    from tests.bench.k8s_mix import pages

    lines = [x.line for x in generate(load_part("tune"), lines=4000)]
    lines += [e.line for body in pages(3000) for e in parse_streams(body)]
    for path in sorted((ROOT / "tests" / "bench" / "loghub" / "data").glob("*/*_structured*.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            lines += [row["Content"] for row, _ in zip(csv.DictReader(f), range(300), strict=False)]
    return list(dict.fromkeys(lines))


def test_real_lines_with_their_digits_redrawn_parse_as_parse_line_parses_them() -> None:
    rng = random.Random(12)
    parser = LineParser()
    lines = real_lines()
    assert len(lines) > 3000
    cut = 0
    for line in lines:
        check(parser, line)
        for _ in range(3):
            cut += check(parser, redraw(line, rng))
    assert cut > len(lines)  # the cuts were used, not only parse_line


PIECES = [
    "level=error", "level=warn", "level=e1", "lvl=info", "ts=2026-01-01T10:00:00Z", 'msg="dial 10.0.0.1 failed"',
    'msg="x 1"', 'err="x 1"', 'err="x 2"', "error=timeout", 'msg="a\\"b 1"', "caller=main.go:42", "msg=ok",
    "E0601", "I0102", "10:00:00.123456", "1", "ctl.go:42]", "ERROR", "WARN:", "[INFO]", "FATAL:", "panic:",
    "LOG:", "2026-06-01", "12:00:01.5", "[4802]", "failed", "error", "1234", "0x1f", "x509", "id=42", "\n", "\t",
    "Traceback (most recent call last)", "\tat com.x.Y(Y.java:1)", "ValueError: bad 1", '{"msg":"m 1"}', "{",
    "é", "٣", "  ", '"', "=",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=9), st.randoms(use_true_random=False))
def test_generated_lines_parse_as_parse_line_parses_them(pieces: list[str], rng: random.Random) -> None:
    parser = LineParser()
    line = " ".join(pieces)
    check(parser, line)
    for _ in range(4):
        check(parser, redraw(line, rng))


def test_a_cut_is_kept_only_when_the_message_is_the_line_s_own_slice() -> None:
    parser = LineParser()
    # the message occurs twice in the line: no cut (its place would be a guess)
    assert not check(parser, "E0601 10:00:00.123456       1 a.go:1] a.go:1")
    assert check(parser, "E0601 10:00:00.123456       1 a.go:1] sync 7 failed")
    assert check(parser, "E0601 10:00:00.123456       1 a.go:1] sync 8 failed")  # a sibling: cut
    # an error appended to the message compares two texts, digits and all: parsed every time
    assert not check(parser, 'level=error msg="x 1" err="x 1"')
    assert not check(parser, 'level=error msg="x 1" err="x 2"')
    # ... even when the joined text happens to stand elsewhere in the line
    assert not check(parser, 'level=error msg="a1" err="b1" x="a1: b1"')
    assert not check(parser, 'level=error msg="a2" err="b1" x="a1: b1"')
    # a level with digits is taken as it stands: parsed every time
    assert not check(parser, 'level=e1 msg="hello"')
    # JSON, escapes and multi-line entries: parsed every time
    assert not check(parser, '{"level":"error","msg":"m 1"}')
    assert not check(parser, 'level=error msg="a \\"1\\""')
    assert not check(parser, "panic: boom 1\ngoroutine 1 [running]:")


def test_the_cache_is_bounded() -> None:
    parser = LineParser(limit=10)
    for i in range(100):
        check(parser, f"E0601 10:00:00.123456       1 a.go:1] shape{'x' * i} 7 failed")
    assert len(parser._cuts) <= 10
