"""The ``notifications:`` section: secrets from files or the environment, one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import load_config
from sentinel.errors import ConfigError

SLACK_URL = "https://hooks.slack.example/services/T000/B000/very-secret-path"


def write(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("notifications:\n  destinations:\n" + body, encoding="utf-8")
    return cfg


def problems(cfg: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env=env or {})
    return err.value.problems


def test_url_and_token_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "am-token").write_text("am-token-value\n")
    cfg = write(
        tmp_path,
        "    - {name: chat, type: slack, url_env: SLACK_URL, min_priority: high, namespaces: [shop]}\n"
        "    - {name: am, type: alertmanager, url: 'http://am:9093', token_file: am-token}\n",
    )
    loaded = load_config(cfg, env={"SLACK_URL": SLACK_URL})
    chat, am = loaded.config.notifications.destinations
    assert chat.url.get_secret_value() == SLACK_URL
    assert chat.min_priority.value == "P2" and chat.namespaces == ["shop"]
    assert am.token.get_secret_value() == "am-token-value"
    assert SLACK_URL not in repr(loaded.config) and "am-token-value" not in repr(loaded.config)
    assert loaded.warnings == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "    - {name: chat, type: slack, url_env: NOT_SET}\n",
            "notifications.destinations[0] (chat).url_env: environment variable NOT_SET is not set",
            id="env-missing",
        ),
        pytest.param(
            "    - {name: chat, type: slack, url_file: nowhere.txt}\n",
            "notifications.destinations[0] (chat).url_file: {tmp}/nowhere.txt: cannot read: No such file or directory",
            id="file-missing",
        ),
        pytest.param(
            "    - {name: chat, type: slack}\n",
            "notifications.destinations[0] (chat).url: required (or url_file / url_env)",
            id="no-url",
        ),
        pytest.param(
            "    - {name: chat, type: slack, url: 'ftp://secret-host/very-secret-path'}\n",
            "notifications.destinations[0] (chat).url: must start with http:// or https:// (value hidden)",
            id="bad-scheme-hidden",
        ),
    ],
)
def test_secret_problems_name_the_field(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(write(tmp_path, body))
    assert found == [expected.format(tmp=tmp_path)]
    assert all("very-secret-path" not in p for p in found)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "    - {name: x, type: pagerduty, url: 'http://h'}\n",
            "notifications.destinations[0].type: Input should be 'webhook', 'slack' or 'alertmanager'",
            id="unknown-type",
        ),
        pytest.param(
            "    - {name: x, type: webhook, url: 'http://h', min_priority: P9}\n",
            "notifications.destinations[0].min_priority:",
            id="bad-priority",
        ),
        pytest.param(
            "    - {name: x, type: webhook, url: 'http://h', events: [deleted]}\n",
            "notifications.destinations[0].events[0]: Input should be 'new', 'regressed'",
            id="unknown-event",
        ),
        pytest.param(
            "    - {name: x, type: webhook, url: 'http://h', rate_limit: 0}\n",
            "notifications.destinations[0].rate_limit: Input should be greater than or equal to 1",
            id="rate-limit-zero",
        ),
        pytest.param(
            "    - {name: x, type: webhook, url: 'http://h'}\n    - {name: x, type: slack, url: 'http://h'}\n",
            "notifications: destinations: duplicate name 'x'",
            id="duplicate-name",
        ),
        pytest.param(
            "    - {name: x, type: webhook, url: 12345}\n",
            "notifications.destinations[0].url: Input should be a valid string (got int (hidden))",
            id="secret-never-echoed",
        ),
    ],
)
def test_invalid_destinations(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(write(tmp_path, body))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_external_url_must_be_http(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("web:\n  external_url: sentinel.example.com\n", encoding="utf-8")
    assert problems(cfg) == ["web.external_url: must start with http:// or https://"]
