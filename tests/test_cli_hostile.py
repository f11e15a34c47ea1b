"""``analyze`` on hostile input: malformed JSONL is named by file and line; CSV cells cannot run as formulas."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.core.export import safe_cell

GOOD = json.dumps({"streams": [{"stream": {"namespace": "shop", "pod": "api-1"}, "values": [["1", "ERROR ok"]]}]})


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param({"streams": 5}, "streams must be a list, got int", id="streams-number"),
        pytest.param({"streams": [5]}, "streams[0] must be an object, got int", id="stream-number"),
        pytest.param(
            {"streams": [{"stream": ["namespace", "shop"], "values": [["1", "x"]]}]},
            "streams[0].stream must be an object of label names to values, got list",
            id="labels-list",
        ),
        pytest.param(
            {"streams": [{"stream": {}, "values": [["1"]]}]},
            'streams[0].values[0] must be [timestamp, line], got ["1"]',
            id="pair-too-short",
        ),
        pytest.param(
            {"streams": [{"stream": {}, "values": "1 x"}]}, "streams[0].values must be a list, got str", id="values-str"
        ),
        pytest.param(
            {"streams": [{"stream": {}, "values": [[]]}]},
            "streams[0].values[0] must be [timestamp, line], got []",
            id="empty",
        ),
        pytest.param(
            {"line": "x", "labels": ["a"]},
            "labels must be an object of label names to values, got list",
            id="line-labels-list",
        ),
    ],
)
def test_analyze_malformed_jsonl_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: object, expected: str
) -> None:
    log = tmp_path / "logs.jsonl"
    log.write_text(f"{GOOD}\n\n{json.dumps(bad)}\n{GOOD}\n", encoding="utf-8")
    assert main(["analyze", str(log)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [f"analyze: {log}:3: {expected}"], err


def test_analyze_infinite_timestamp_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "logs.jsonl"
    log.write_text('{"streams": [{"stream": {}, "values": [[1e999, "ERROR x"]]}]}\n', encoding="utf-8")
    assert main(["analyze", str(log)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"analyze: {log}:1: ts must be") and "Traceback" not in err


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("=1+1", "'=1+1", id="equals"),
        pytest.param("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0", id="plus"),
        pytest.param("-2+3", "'-2+3", id="minus"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("\t=1", "'\t=1", id="tab"),
        pytest.param("\r=1", "'\r=1", id="cr"),
        pytest.param("error =1", "error =1", id="inside"),
        pytest.param(-5, -5, id="negative-number"),
        pytest.param(None, None, id="none"),
    ],
)
def test_safe_cell(value: object, expected: object) -> None:
    assert safe_cell(value) == expected


def test_analyze_csv_neutralises_formulas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "plain.log"
    log.write_text('=HYPERLINK("http://evil.example/x","click") ERROR payment failed\n' * 3, encoding="utf-8")
    assert main(["analyze", str(log), "--format", "csv", "--namespace", "@ns", "--pod=-api-7d4b9c8f6d-xk2l9"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    row = rows[0]
    assert row["template"].startswith("'=HYPERLINK(")
    assert row["namespace"] == "'@ns"
    assert row["workload"].startswith("'-api")
    assert row["count"] == "3"
