"""One table of settings: the config file and a live edit accept and refuse the same values."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import Config, load_config
from sentinel.core.policy import SafetyLimits
from sentinel.core.settings_spec import LIVE, SETTINGS, Setting
from sentinel.engine.settings import RuntimeSettings, limits_of, validate_update
from sentinel.errors import ConfigError

BOUNDED = [s for s in LIVE if s.kind in ("int", "duration") and s.low is not None and s.high is not None]


def _outside(spec_low: float, spec_high: float, kind: str) -> list[object]:
    step = 1 if kind == "int" else 0.5
    return [spec_low - step, spec_high + step]


CASES = [
    pytest.param(s, value, id=f"{s.live}={value!r}")
    for s in BOUNDED
    for value in _outside(s.low or 0, s.high or 0, s.kind)
    if value >= 0  # a negative duration is refused earlier, by the duration parser
] + [
    pytest.param(next(s for s in LIVE if s.live == "query"), 'namespace="x"', id="query-without-selector"),
    pytest.param(next(s for s in LIVE if s.live == "query"), '{app="x} |= "a"', id="query-unbalanced-quote"),
    pytest.param(next(s for s in LIVE if s.live == "excluded_namespaces"), ["Not_A_Namespace"], id="namespace"),
]


def _yaml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


@pytest.mark.parametrize(("spec", "value"), CASES)
def test_the_file_and_a_live_edit_refuse_the_same_value_naming_the_field(
    tmp_path: Path, spec: object, value: object
) -> None:
    assert isinstance(spec, Setting)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"{spec.section}:\n  {spec.field}: {_yaml_value(value)}\n")
    with pytest.raises(ConfigError) as file_err:
        load_config(cfg, env={})
    file_problems = "\n".join(file_err.value.problems)
    assert str(cfg) in str(file_err.value)
    assert f"{spec.key}:" in file_problems

    with pytest.raises(ConfigError) as live_err:
        validate_update({spec.live: value})
    live_problems = "\n".join(live_err.value.problems)
    assert live_problems.startswith(f"{spec.live}:")
    # the same rule, in the same words
    assert file_problems.split(f"{spec.key}:", 1)[1].strip() == live_problems.split(":", 1)[1].strip()


@pytest.mark.parametrize("spec", BOUNDED, ids=[s.live for s in BOUNDED])
def test_the_bounds_themselves_are_accepted_by_both(tmp_path: Path, spec: object) -> None:
    assert isinstance(spec, Setting)
    for value in (spec.low, spec.high):
        cfg = tmp_path / "config.yaml"
        extra = "\n  max_lookback: 7d" if spec.key == "loki.lookback" else ""
        cfg.write_text(f"{spec.section}:\n  {spec.field}: {value:g}{extra}\n")
        config = load_config(cfg, env={}).config
        assert getattr(getattr(config, spec.section), spec.field) == value
        update = validate_update({spec.live: value})
        assert getattr(update, spec.live) == value


def test_the_poll_interval_has_one_bound_5s_to_1h(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("loki:\n  poll_interval: 2s\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert err.value.problems == ["loki.poll_interval: must be between 5s and 1h"]
    with pytest.raises(ConfigError) as live:
        validate_update({"poll_interval": "2s"})
    assert live.value.problems == ["poll_interval: must be between 5s and 1h"]


def test_the_go_tools_config_still_loads() -> None:
    upstream = Path(__file__).parents[1] / "fixtures" / "upstream" / "upstream-config.yaml"
    config = load_config(upstream, env={}).config
    assert config.loki.poll_interval == 30.0 and config.remediation.max_actions_per_hour == 50


def test_defaults_runtime_settings_and_limits_come_from_the_table() -> None:
    config = Config()
    settings = RuntimeSettings.from_config(config)
    for s in SETTINGS:
        value = getattr(getattr(config, s.section), s.field)
        expected = list(s.default) if s.kind == "namespaces" else s.default
        assert value == expected, s.key
        if s.live:
            got = getattr(settings, s.live)
            assert (list(got) if s.kind == "namespaces" else got) == expected, s.live
    limits = limits_of(config, settings)
    assert limits == SafetyLimits(
        enabled=True,
        dry_run=False,
        max_actions_per_hour=50,
        per_workload_per_hour=3,
        excluded_namespaces=frozenset({"kube-system"}),
        breaker_threshold=3,
        effectiveness_window=300.0,
    )
    assert {s.limit for s in SETTINGS if s.limit} == set(SafetyLimits.__dataclass_fields__)
