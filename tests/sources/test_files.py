"""File source: JSONL in both shapes and plain text; live replay neither loses nor repeats lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.errors import SourceError
from sentinel.sources.files import FileSource, read_entries

NS = 1_000_000_000
BASE = 1_795_000_000 * NS  # realistic epoch nanoseconds


def test_reads_loki_push_format_simple_jsonl_and_plain_text(tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    push = {
        "streams": [
            {
                "stream": {"namespace": "a"},
                "values": [["1795826344164316960", "ERROR one"], ["1795826344164316961", "ERROR two"]],
            }
        ]
    }
    f.write_text(
        json.dumps(push)
        + "\n"
        + json.dumps({"ts": "2026-11-28T10:00:00Z", "labels": {"namespace": "b"}, "line": "ERROR three"})
        + "\n"
        + json.dumps({"ts": 1795826344.5, "labels": {"namespace": "c"}, "line": "ERROR four"})
        + "\n"
        + "a plain line\n"
    )
    entries = read_entries(f, default_labels={"namespace": "plain"}, now=lambda: 1795826400.0)
    assert [e.line for e in entries] == ["ERROR one", "ERROR two", "ERROR three", "ERROR four", "a plain line"]
    assert entries[0].ts_ns == 1795826344164316960
    assert entries[2].labels == {"namespace": "b"} and entries[4].labels == {"namespace": "plain"}
    assert entries[3].ts_ns == 1795826344500000000


def test_bad_timestamp_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"ts": "yesterday", "line": "x"}) + "\n")
    with pytest.raises(SourceError, match=r"bad.jsonl:1: ts must be"):
        read_entries(f)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        read_entries(tmp_path / "absent.jsonl")


def test_live_replay_windows_tile_without_loss_or_repeat(tmp_path: Path) -> None:
    f = tmp_path / "l.jsonl"
    f.write_text(
        "".join(json.dumps({"ts": BASE + i * NS, "labels": {}, "line": f"ERROR {i}"}) + "\n" for i in range(10))
    )
    now = [5000.0]
    src = FileSource(f, live=True, clock=lambda: now[0])
    period = 10  # 9 s of span + 1 s gap
    start = int((5000 - period) * NS)
    seen: list[tuple[int, str]] = []
    step = int(0.7 * NS)
    end = start + 3 * period * NS  # three loops
    t = start
    while t < end:
        for page in src.fetch(t, min(t + step, end)):
            seen.extend((e.ts_ns, e.line) for e in page)
        t += step
    assert len(seen) == 30 and len(set(seen)) == 30
    assert [line for _, line in seen[:10]] == [f"ERROR {i}" for i in range(10)]
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:], strict=False))


def test_fixed_replay_returns_window(tmp_path: Path) -> None:
    f = tmp_path / "l.jsonl"
    f.write_text("".join(json.dumps({"ts": BASE + i * NS, "labels": {}, "line": f"l{i}"}) + "\n" for i in range(1, 11)))
    src = FileSource(f)
    got = [e.line for page in src.fetch(BASE + 3 * NS, BASE + 6 * NS) for e in page]
    assert got == ["l3", "l4", "l5"]
