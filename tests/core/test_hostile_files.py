"""Hostile config and rules files: each is refused in bounded time with one line naming the file and the problem.

The cases are the ones an adversarial run found (issue 11 "Bad files and lines", issue 18 "rule
count"): alias bombs, deep nesting, huge files, bad bytes, non-finite durations, duplicate keys,
absurd scale parameters, and more rules than one RE2 set could hold.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.config import MAX_FILE_BYTES, load_config, load_rules
from sentinel.core.rules import MAX_RULES
from sentinel.errors import ConfigError

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
rules:
  - name: bomb
    priority: P1
    match: {pattern: x}
    description: *i
"""

RULE = """\
  - name: {name}
    priority: P3
    match:
      pattern: "(?i)service-{i} (connection|timeout) error.*code=\\\\d+"
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def refusal(fn: object, path: Path) -> str:
    """The one-line message of the ConfigError ``fn(path)`` raises."""
    with pytest.raises(ConfigError) as info:
        fn(path)  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


def rules_text(n: int) -> str:
    return "rules:\n" + "".join(RULE.format(name=f"r{i}", i=i) for i in range(n))


# -- aliases, nesting, size, bytes ------------------------------------------------------------------


def test_billion_laughs_is_refused_quickly_and_small(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", BILLION_LAUGHS)
    tracemalloc.start()
    try:
        message = refusal(load_rules, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "refused at line" in message and "aliases expand to more than 10000 nodes" in message
    assert peak < 20 * 1024 * 1024, peak
    # a few aliases (and merge keys) still load and mean the same
    text = """\
common: &restart
  action: restart-pod
  cooldown: 10m
rules:
  - name: a
    priority: P1
    match: {pattern: "OOMKilled"}
    remediation: *restart
  - name: b
    priority: P2
    match: {pattern: "CrashLoopBackOff"}
    remediation:
      <<: *restart
      cooldown: 1m
"""
    rules = load_rules(write(tmp_path, "ok.yaml", text)).ruleset
    a, b = rules.by_name("a"), rules.by_name("b")
    assert a is not None and a.action == "restart-pod" and a.cooldown == 600
    assert b is not None and b.action == "restart-pod" and b.cooldown == 60


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("rules: " + "[" * 20_000 + "]" * 20_000 + "\n", id="flow-sequences"),
        pytest.param("rules: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", id="flow-mappings"),
        pytest.param("rules: " + "[" * 100 + "]" * 100 + "\n", id="100-deep"),
        pytest.param("".join("  " * i + "a:\n" for i in range(200)) + "  " * 200 + "b: 1\n", id="block-mappings"),
    ],
)
def test_deep_nesting_is_refused_naming_the_line(tmp_path: Path, text: str) -> None:
    message = refusal(load_rules, write(tmp_path, "rules.yaml", text))
    # libyaml stops at 1000 levels itself; below that our own limit of 64 does
    assert "at line" in message
    assert "nested more than 64 levels deep" in message or "exceeded maximum nesting depth" in message


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    with path.open("wb") as fh:
        fh.write(b"rules:\n")
        fh.write(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    message = refusal(load_rules, path)
    assert message.endswith("rules file is larger than 4 MiB; refused")


def test_non_utf8_bytes_name_the_byte_offset_and_line(tmp_path: Path) -> None:
    data = b"rules:\n  - name: caf" + b"\xe9" + b"\n    priority: P1\n"
    message = refusal(load_rules, write(tmp_path, "rules.yaml", data))
    assert "not UTF-8: byte 0xe9 at offset 20 (line 2)" in message


def test_config_non_utf8_is_named_too(tmp_path: Path) -> None:
    message = refusal(lambda p: load_config(p, env={}), write(tmp_path, "config.yaml", b"loki:\n  url: \xff\n"))
    assert "not UTF-8: byte 0xff at offset 13 (line 2)" in message


# -- bad values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("loki:\n  poll_interval: .inf\n", "loki.poll_interval: duration must be a finite", id="inf"),
        pytest.param("loki:\n  lookback: .nan\n", "loki.lookback: duration must be a finite", id="nan"),
        pytest.param("loki:\n  lookback: 99999d\n", "loki.lookback: duration must be at most 3650d", id="huge"),
    ],
)
def test_non_finite_durations_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "config.yaml", text), env={})
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_non_finite_cooldown_in_a_rule_is_refused(tmp_path: Path) -> None:
    text = "rules:\n  - name: a\n    priority: P1\n    match: {pattern: x}\n    remediation: {cooldown: .inf}\n"
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, "rules.yaml", text))
    assert any("rules[0] (a).remediation.cooldown: duration must be a finite" in p for p in info.value.problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "loki:\n  url: http://a:3100\n  poll_interval: 30s\n  url: http://b:3100\n",
            "refused at line 4, column 3: duplicate key 'url' (lines 2 and 4)",
            id="in-a-section",
        ),
        pytest.param(
            "loki: {}\nremediation:\n  dry_run: true\nremediation:\n  dry_run: false\n",
            "refused at line 4, column 1: duplicate key 'remediation' (lines 2 and 4)",
            id="top-level",
        ),
    ],
)
def test_duplicate_keys_name_the_key_and_both_lines(tmp_path: Path, text: str, expected: str) -> None:
    message = refusal(lambda p: load_config(p, env={}), write(tmp_path, "config.yaml", text))
    assert expected in message


def test_duplicate_key_in_a_rule(tmp_path: Path) -> None:
    text = "rules:\n  - name: a\n    priority: P1\n    priority: P4\n    match: {pattern: x}\n"
    assert "duplicate key 'priority' (lines 3 and 4)" in refusal(load_rules, write(tmp_path, "rules.yaml", text))


@pytest.mark.parametrize(
    ("remediation", "expected"),
    [
        pytest.param("{action: scale-up, params: {replicas: 100000}}", "replicas must be at most 1000", id="absolute"),
        pytest.param("{action: scale-up, params: {replicas: '+5000'}}", "replicas must be at most 1000", id="step"),
        pytest.param("{action: scale-up, params: {max_replicas: 100000}}", "params.max_replicas", id="max"),
        pytest.param("{action: scale-down, params: {min_replicas: 100000}}", "params.min_replicas", id="min"),
    ],
)
def test_scale_params_beyond_sane_bounds_are_refused(tmp_path: Path, remediation: str, expected: str) -> None:
    text = f"rules:\n  - name: grow\n    priority: P2\n    match: {{pattern: x}}\n    remediation: {remediation}\n"
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, "rules.yaml", text))
    assert any(p.startswith("rules[0] (grow).remediation:") and expected in p for p in info.value.problems)


# -- rule count -------------------------------------------------------------------------------------


def test_three_thousand_rules_compile(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "rules.yaml", rules_text(3000))).ruleset
    assert len(rules) == 3000
    assert rules.classify("service-2999 timeout error code=5").name == "r2999"
    assert rules.classify("service-17 connection error code=1").name == "r17"


def test_more_rules_than_the_limit_are_refused_naming_the_count(tmp_path: Path) -> None:
    text = "rules:\n" + "".join(f"  - {{name: r{i}, priority: P4, match: {{keywords: [k]}}}}\n" for i in range(10_001))
    message = refusal(load_rules, write(tmp_path, "rules.yaml", text))
    assert message.endswith(f"rules: 10001 rules, at most {MAX_RULES} are supported")


# -- the command line -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(BILLION_LAUGHS, "aliases expand", id="alias-bomb"),
        pytest.param("rules: " + "[" * 20_000 + "]" * 20_000 + "\n", "nesting depth", id="deep"),
        pytest.param("rules: " + "{a: " * 70 + "1" + "}" * 70 + "\n", "nested more than 64", id="70-deep"),
        pytest.param(b"rules:\n  - name: \xe9\n", "not UTF-8: byte 0xe9 at offset 17", id="latin-1"),
        pytest.param("rules:\n  - {name: a, priority: P1, name: b}\n", "duplicate key 'name'", id="duplicate"),
    ],
)
def test_check_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rules: str | bytes, expected: str
) -> None:
    config = write(tmp_path, "config.yaml", "loki:\n  poll_interval: 30s\n")
    path = write(tmp_path, "rules.yaml", rules)
    assert main(["check", "--config", str(config), "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if expected in line]
    assert len(lines) == 1 and str(path) in lines[0], err


def test_run_refuses_an_infinite_interval_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = write(tmp_path, "rules.yaml", "rules: []\n")
    config = write(tmp_path, "config.yaml", f"loki:\n  poll_interval: .inf\nrules_file: {rules}\n")
    assert main(["run", "--once", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "loki.poll_interval: duration must be a finite number" in err and "Traceback" not in err


def test_a_bombed_value_gives_a_short_message(tmp_path: Path) -> None:
    huge = "a" * 1_000_000
    text = f"rules:\n  - name: x\n    priority: P1\n    match: {{pattern: '{huge}(', keywords: {huge}}}\n"
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, "rules.yaml", text))
    assert len(str(info.value)) < 2000, len(str(info.value))
    assert any(p.startswith("rules[0] (x).match.keywords: ") and "…" in p for p in info.value.problems)
    text = f"rules:\n  - name: x\n    priority: P1\n    match: {{pattern: '{huge}('}}\n"
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, "rules.yaml", text))
    assert len(str(info.value)) < 2000, len(str(info.value))
    assert info.value.problems[0].startswith("rules[0] (x).match.pattern: invalid RE2 regex 'aaa")
