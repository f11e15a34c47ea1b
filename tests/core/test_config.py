"""config.yaml and rules.yaml: the Go tool's files load and mean the same; every bad input is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import load_config, load_rules, parse_rules
from sentinel.core.model import Priority
from sentinel.errors import ConfigError

SHARED = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_upstream_config_loads_unchanged_and_means_the_same() -> None:
    loaded = load_config(SHARED / "upstream-config.yaml", env={})
    c = loaded.config
    assert c.loki.url == "http://loki.monitoring:3100"
    assert c.loki.query == '{namespace=~".+"} |~ "(?i)(error|fatal|panic|exception|fail)"'
    assert c.loki.poll_interval == 30 and c.loki.lookback == 300
    assert c.kubernetes.in_cluster is True
    assert c.web.listen == ":8080"
    assert c.remediation.enabled is True and c.remediation.dry_run is False
    assert c.remediation.max_actions_per_hour == 50
    assert c.remediation.excluded_namespaces == ["kube-system", "kube-public", "monitoring", "logging"]
    assert c.rules_file == "/etc/kube-sentinel/rules.yaml"
    assert c.store.type == "memory"
    assert loaded.warnings == []


def test_upstream_rules_load_unchanged_in_order() -> None:
    rules = load_rules(SHARED / "upstream-rules.yaml").ruleset
    names = [r.name for r in rules.rules]
    assert names[0] == "crashloop-backoff" and names[-1] == "generic-error"
    assert len(names) == 15
    crash = rules.by_name("crashloop-backoff")
    assert crash is not None and crash.priority is Priority.P1
    assert crash.action == "restart-pod" and crash.cooldown == 300


def test_shipped_files_load_cleanly() -> None:
    loaded = load_config(ROOT / "config" / "config.yaml", env={})
    assert loaded.warnings == []
    rules = load_rules(ROOT / "config" / "rules.yaml")
    assert rules.warnings == [] and len(rules.ruleset) >= 15


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "loki:\n  poll_interval: soon\n", "loki.poll_interval: cannot parse duration 'soon'", id="bad-duration"
        ),
        pytest.param(
            "loki:\n  lookback: -5m\n", "loki.lookback: duration must not be negative", id="negative-duration"
        ),
        pytest.param("loki:\n  url: loki:3100\n", "loki.url: must start with http:// or https://", id="bad-url"),
        pytest.param(
            "loki:\n  url: http://admin:pw@loki:3100\n",
            "loki.url: must not carry credentials",
            id="url-with-credentials",
        ),
        pytest.param("loki:\n  timeout: 0s\n", "loki.timeout: must be longer than 0s", id="zero-timeout"),
        pytest.param(
            "remediation:\n  effectiveness_window: 0s\n",
            "remediation.effectiveness_window: must be longer than 0s",
            id="zero-window",
        ),
        pytest.param(
            "remediation:\n  max_actions_per_hour: lots\n", "remediation.max_actions_per_hour", id="wrong-type-int"
        ),
        pytest.param("remediation:\n  enabled: maybe\n", "remediation.enabled", id="wrong-type-bool"),
        pytest.param(
            "remediation:\n  max_actions_per_hour: -1\n", "remediation.max_actions_per_hour", id="negative-budget"
        ),
        pytest.param("store:\n  type: sqlite\n", "store.type", id="unknown-store"),
        pytest.param("web:\n  listen: 8080\n", "web.listen", id="bad-listen"),
        pytest.param("loki: [1, 2]\n", "loki", id="section-not-mapping"),
        pytest.param("- just\n- a list\n", "top level must be a mapping", id="top-level-list"),
        pytest.param("loki:\n  url: [unclosed\n", "not valid YAML at line", id="bad-yaml"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "config.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_every_config_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", "loki:\n  poll_interval: x\n  lookback: y\nweb:\n  listen: nope\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert len(info.value.problems) == 3


def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", "loki:\n  urll: http://x\nfuture_section: {}\n")
    loaded = load_config(path, env={})
    assert any("loki.urll: unknown key" in w for w in loaded.warnings)
    assert any("future_section: unknown key" in w for w in loaded.warnings)


def test_secrets_from_env_and_files_never_printed(tmp_path: Path) -> None:
    secret_file = write(tmp_path, "token", "s3cr3t-token\n")
    path = write(tmp_path, "config.yaml", "loki:\n  password: in-file-pass\n")
    env = {"KUBE_SENTINEL_LOKI_PASSWORD": "env-pass", "KUBE_SENTINEL_API_TOKEN_FILE": str(secret_file)}
    c = load_config(path, env=env).config
    assert c.loki.password.get_secret_value() == "env-pass"
    assert c.api.token.get_secret_value() == "s3cr3t-token"
    shown = repr(c) + str(c) + c.model_dump_json()
    assert "env-pass" not in shown and "s3cr3t-token" not in shown and "in-file-pass" not in shown


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yaml", "api:\n  token_file: nope.txt\n")
    with pytest.raises(ConfigError, match="nope.txt"):
        load_config(path, env={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml", env={})


RULE = """
  - name: {name}
    match:
      pattern: "{pattern}"
    priority: {priority}
    remediation:
      action: {action}
      cooldown: {cooldown}
"""


def rules_text(**over: str) -> str:
    values = {"name": "r1", "pattern": "boom", "priority": "P2", "action": "none", "cooldown": "5m"} | over
    return "rules:" + RULE.format(**values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            rules_text(pattern="(unclosed"),
            "rules[0] (r1).match.pattern: invalid RE2 regex '(unclosed': missing ): (unclosed",
            id="bad-regex",
        ),
        pytest.param(rules_text(pattern="(?<=a)b"), "invalid perl operator", id="lookbehind-not-re2"),
        pytest.param(rules_text(priority="P9"), "rules[0] (r1).priority: unknown priority 'P9'", id="unknown-priority"),
        pytest.param(
            rules_text(action="reboot-node"),
            "rules[0] (r1).remediation: unknown action 'reboot-node'",
            id="unknown-action",
        ),
        pytest.param(
            rules_text(cooldown="-1m"),
            "rules[0] (r1).remediation.cooldown: duration must not be negative",
            id="negative-cooldown",
        ),
        pytest.param(
            rules_text(cooldown="fortnight"),
            "rules[0] (r1).remediation.cooldown: cannot parse duration",
            id="bad-cooldown",
        ),
        pytest.param(
            rules_text() + RULE.format(name="r1", pattern="x", priority="P1", action="none", cooldown="1m"),
            "rules[1] (r1).name: duplicate rule name 'r1'",
            id="duplicate-name",
        ),
        pytest.param(
            "rules:\n  - name: r1\n    priority: P1\n", "rules[0] (r1).match: Field required", id="missing-match"
        ),
        pytest.param(
            "rules:\n  - name: r1\n    match: {}\n    priority: P1\n", "match: needs at least one of", id="empty-match"
        ),
        pytest.param("rules: {a: 1}\n", "rules: Input should be a valid list", id="rules-not-list"),
        pytest.param("rules:\n  - just-a-string\n", "rules[0]: must be a mapping", id="rule-not-mapping"),
        pytest.param(
            "rules:\n  - name: r1\n    match: {pattern: x}\n    priority: P1\n    enabled: perhaps\n",
            "rules[0] (r1).enabled",
            id="wrong-type-enabled",
        ),
        pytest.param(
            "rules:\n  - name: r1\n    match: {pattern: x, labels: {tier: '~(bad'}}\n    priority: P1\n",
            "match.labels.tier: invalid RE2 regex",
            id="bad-label-regex",
        ),
        pytest.param(
            rules_text(action="scale-up").replace("cooldown: 5m", "cooldown: 5m\n      params: {replicas: lots}"),
            "params.replicas",
            id="bad-action-param",
        ),
        pytest.param(
            rules_text(action="restart-pod").replace("cooldown: 5m", "cooldown: 5m\n      params: {grace: 3}"),
            "params.grace: Extra inputs are not permitted",
            id="unknown-action-param",
        ),
    ],
)
def test_bad_rules_name_file_rule_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "rules.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_unknown_rule_keys_warn(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", rules_text() + "    severity: high\n")
    loaded = load_rules(path)
    assert len(loaded.ruleset) == 1
    assert any("rules[0] (r1).severity: unknown key" in w for w in loaded.warnings)


def test_priority_names_accepted() -> None:
    data = {
        "rules": [
            {"name": f"r{i}", "match": {"pattern": "x"}, "priority": p}
            for i, p in enumerate(["critical", "High", "p3", "low"])
        ]
    }
    rs = parse_rules(data, source="inline").ruleset
    assert [r.priority for r in rs.rules] == [Priority.P1, Priority.P2, Priority.P3, Priority.P4]


def test_disabled_rules_do_not_match() -> None:
    data = {
        "rules": [
            {"name": "off", "match": {"pattern": "boom"}, "priority": "P1", "enabled": False},
            {"name": "on", "match": {"pattern": "boom"}, "priority": "P3"},
        ]
    }
    rs = parse_rules(data, source="inline").ruleset
    assert rs.classify("boom").name == "on"


def test_wrongly_typed_secrets_are_not_echoed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "config.yaml",
        "loki:\n  password: 987654321\n  bearer_token: [tok-abc]\napi:\n  token: 123456789012\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert "loki.password" in message and "api.token" in message and "loki.bearer_token" in message
    assert "987654321" not in message and "123456789012" not in message and "tok-abc" not in message
