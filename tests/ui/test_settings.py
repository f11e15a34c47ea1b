"""The Settings page: a bad field shows its error and saves nothing; good changes apply live and are recorded."""

from __future__ import annotations

import dataclasses

import pytest

from sentinel.core.durations import format_duration
from sentinel.core.policy import Breaker
from sentinel.engine.runtime import Runtime
from sentinel.engine.settings import FILE_VALUES, RuntimeSettings
from sentinel.ui.settings_form import overrides
from tests.ui.conftest import no_exception, open_page, table, texts


def _save(at) -> None:  # noqa: ANN001 - AppTest
    at.button[[b.label for b in at.button].index("Save and apply")].click().run()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        pytest.param("s_poll_interval", "2s", "must be between 5s and 1h", id="interval-too-short"),
        pytest.param("s_poll_interval", "soon", "cannot parse duration", id="interval-not-a-duration"),
        pytest.param("s_lookback", "30d", "must be between 10s and 7 days", id="lookback-too-long"),
        pytest.param(
            "s_excluded_namespaces", "kube-system, Not_A_Namespace", "not valid namespace names", id="namespace"
        ),
        pytest.param("s_query", "error", "stream selector", id="query"),
        pytest.param("s_max_actions_per_hour", 20_000, "less than or equal to 10000", id="budget-too-big"),
        pytest.param("s_per_workload_per_hour", -1, "greater than or equal to 0", id="negative-cap"),
    ],
)
def test_invalid_field_shows_error_and_saves_nothing(empty_rt: Runtime, key: str, value: object, message: str) -> None:
    before = empty_rt.settings
    at = open_page("settings")
    at.toggle(key="s_dry_run").set_value(False)  # a valid change alongside: must not be saved either
    widget = (
        at.number_input(key=key)
        if isinstance(value, int)
        else (at.text_area(key=key) if key == "s_query" else at.text_input(key=key))
    )
    widget.set_value(value)
    _save(at)
    no_exception(at)
    errors = [e.value for e in at.error]
    assert any(message in e for e in errors), errors
    assert any("Nothing was changed" in e for e in errors)
    assert empty_rt.settings == before
    assert empty_rt.settings_history() == []
    # what the person typed is still there, to be fixed
    assert widget.value == value


def test_valid_change_applies_live_and_is_recorded(empty_rt: Runtime) -> None:
    at = open_page("settings")
    at.text_input(key="s_poll_interval").set_value("30s")
    at.toggle(key="s_dry_run").set_value(False)
    at.number_input(key="s_max_actions_per_hour").set_value(7)
    _save(at)
    no_exception(at)
    at.button(key="s_confirm_risky").click().run()  # dry-run off and a bigger budget: confirmed by name
    no_exception(at)
    assert not at.error
    assert empty_rt.settings.poll_interval == 30.0
    assert empty_rt.settings.dry_run is False
    assert empty_rt.settings.max_actions_per_hour == 7
    assert empty_rt.remediator.limits.max_actions_per_hour == 7  # applied live
    assert any("Saved and applied" in s.value for s in at.success)
    history = empty_rt.settings_history()
    assert len(history) == 1 and history[0]["by"] == "console"
    assert history[0]["confirmed"] == [
        "turn dry-run OFF: actions will change the cluster",
        "raise the hourly budget to 7, above its default of 6",
    ]
    rows = table(at, "setting", "from", "to")
    assert set(rows["setting"]) == {"Poll interval", "Dry-run", "Max actions per hour (all workloads)"}
    assert "30s" in set(rows["to"])
    # the stored override survives: a new runtime on the same store starts with it
    stored = {k: v for k, v in (empty_rt.store.get_state("settings") or {}).items() if k != FILE_VALUES}
    assert stored == {"poll_interval": 30.0, "dry_run": False, "max_actions_per_hour": 7}


def test_saving_without_changes_says_so(empty_rt: Runtime) -> None:
    at = open_page("settings")
    _save(at)
    assert any("Nothing changed" in s.value for s in at.success)
    assert empty_rt.settings_history() == []


@pytest.fixture
def token_rt(empty_rt: Runtime) -> Runtime:
    empty_rt.config.api.token = "s3cret-token"  # type: ignore[assignment]  # validated into a SecretStr
    return empty_rt


def test_admin_token_is_asked_and_checked(token_rt: Runtime) -> None:
    at = open_page("settings")
    token = at.text_input(key="s_token")
    assert token.label == "Admin token"
    at.text_input(key="s_poll_interval").set_value("45s")
    token.set_value("wrong")
    _save(at)
    assert any("wrong or missing admin token" in e.value for e in at.error)
    assert token_rt.settings.poll_interval == 5.0
    at.text_input(key="s_token").set_value("s3cret-token")
    _save(at)
    assert not at.error
    assert token_rt.settings.poll_interval == 45.0


def test_no_token_field_without_a_token(empty_rt: Runtime) -> None:
    at = open_page("settings")
    assert "s_token" not in [t.key for t in at.text_input]


def _open_breaker(rt: Runtime, workload: str) -> None:
    state = rt.remediator.state()
    state.breakers[workload] = Breaker(open=True, reason="3 ineffective actions in a row", opened_at=rt.clock())
    rt.store.put_state("safety", state.to_dict())


def test_breaker_can_be_reset(empty_rt: Runtime) -> None:
    _open_breaker(empty_rt, "shop/checkout")
    at = open_page("settings")
    assert "shop/checkout" in texts(at) and "open since" in texts(at)
    at.button(key="reset_shop/checkout").click().run()
    no_exception(at)
    assert not empty_rt.remediator.state().breaker_open("shop/checkout")
    assert any("reset" in s.value for s in at.success)


def test_breaker_reset_needs_the_token(token_rt: Runtime) -> None:
    _open_breaker(token_rt, "shop/checkout")
    at = open_page("settings")
    at.button(key="reset_shop/checkout").click().run()
    assert token_rt.remediator.state().breaker_open("shop/checkout")
    at.text_input(key="b_token").set_value("s3cret-token")
    at.button(key="reset_shop/checkout").click().run()
    assert not token_rt.remediator.state().breaker_open("shop/checkout")


def test_open_breaker_banner_on_overview(empty_rt: Runtime) -> None:
    _open_breaker(empty_rt, "shop/checkout")
    assert "Breaker open" in texts(open_page("overview"))


def test_halted_remediator_banner_and_reset(empty_rt: Runtime) -> None:
    assert "Remediation halted" not in texts(open_page("overview"))
    state = empty_rt.remediator.state()
    state.halt("a dry run of restart-pod (record r1) changed the cluster: Pod demo/web-1 is gone", now=empty_rt.clock())
    empty_rt.store.put_state("safety", state.to_dict())
    shown = texts(open_page("overview"))
    assert "Remediation halted" in shown and "Pod demo/web-1 is gone" in shown
    assert "Breaker open" not in shown  # not a workload's breaker
    at = open_page("settings")
    at.button(key="reset_remediator").click().run()
    no_exception(at)
    assert not empty_rt.remediator.state().halted
    assert "Remediation halted" not in texts(open_page("overview"))


# -- runtime overrides of config.yaml ---------------------------------------------------------------


def test_overrides_lists_only_the_fields_that_differ_from_the_file(empty_rt: Runtime) -> None:
    file = RuntimeSettings.from_config(empty_rt.config)
    assert overrides(file, file) == []
    reordered = dataclasses.replace(file, excluded_namespaces=tuple(reversed(file.excluded_namespaces)))
    assert overrides(reordered, file) == []  # the same namespaces in another order are not an override
    changed = dataclasses.replace(file, poll_interval=file.poll_interval + 45, dry_run=not file.dry_run)
    assert overrides(changed, file) == [
        {"setting": "Dry-run", "config file": str(file.dry_run), "in effect": str(not file.dry_run)},
        {
            "setting": "Poll interval",
            "config file": format_duration(file.poll_interval),
            "in effect": format_duration(file.poll_interval + 45),
        },
    ]


def test_page_shows_which_settings_override_the_config_file(empty_rt: Runtime) -> None:
    file = RuntimeSettings.from_config(empty_rt.config)
    assert file.poll_interval != 30 and file.max_actions_per_hour != 7
    at = open_page("settings")
    assert "no console or API change overrides it" in texts(at)
    assert not [d for d in at.dataframe if "config file" in d.value.columns]
    at.text_input(key="s_poll_interval").set_value("30s")
    at.number_input(key="s_max_actions_per_hour").set_value(7)
    _save(at)
    at.button(key="s_confirm_risky").click().run()
    no_exception(at)
    assert any("2 settings override" in i.value for i in at.info)
    rows = table(at, "setting", "config file", "in effect")
    assert rows.to_dict("records") == [
        {
            "setting": "Max actions per hour (all workloads)",
            "config file": str(file.max_actions_per_hour),
            "in effect": "7",
        },
        {"setting": "Poll interval", "config file": format_duration(file.poll_interval), "in effect": "30s"},
    ]
    # back to the file's value: that one no longer overrides it
    at.text_input(key="s_poll_interval").set_value(format_duration(file.poll_interval))
    _save(at)
    assert any("1 setting overrides" in i.value for i in at.info)
    rows = table(at, "setting", "config file", "in effect")
    assert list(rows["setting"]) == ["Max actions per hour (all workloads)"]


def test_overrides_made_through_the_api_show_too(empty_rt: Runtime) -> None:
    empty_rt.update_settings({"remediation_enabled": False}, by="api")
    at = open_page("settings")
    assert any("1 setting overrides" in i.value for i in at.info)
    rows = table(at, "setting", "config file", "in effect")
    assert rows.to_dict("records") == [{"setting": "Remediation enabled", "config file": "True", "in effect": "False"}]


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        pytest.param("s_dry_run", False, "turn dry-run OFF: actions will change the cluster", id="dry-run-off"),
        pytest.param(
            "s_max_actions_per_hour", 60, "raise the hourly budget to 60, above its default of 6", id="budget"
        ),
        pytest.param("s_excluded_namespaces", "kube-system", "stop excluding namespace monitoring", id="exclusion"),
    ],
)
def test_a_risky_change_waits_for_a_confirmation_that_names_it(
    empty_rt: Runtime, key: str, value: object, named: str
) -> None:
    before = empty_rt.settings
    at = open_page("settings")
    widget = {"s_dry_run": at.toggle, "s_max_actions_per_hour": at.number_input}.get(key, at.text_input)
    widget(key=key).set_value(value)
    _save(at)
    no_exception(at)
    assert empty_rt.settings == before and empty_rt.settings_history() == []  # nothing saved yet
    assert any(named in w.value for w in at.warning)
    assert at.button(key="s_confirm_risky").label == f"Confirm: {named}"
    at.button(key="s_confirm_risky").click().run()
    no_exception(at)
    assert empty_rt.settings != before
    (entry,) = empty_rt.settings_history()
    assert entry["confirmed"] == [named]
    rows = table(at, "setting", "confirmed")
    assert rows["confirmed"].tolist() == [named]


def test_a_cancelled_risky_change_saves_nothing(empty_rt: Runtime) -> None:
    before = empty_rt.settings
    at = open_page("settings")
    at.toggle(key="s_dry_run").set_value(False)
    _save(at)
    at.button(key="s_cancel_risky").click().run()
    no_exception(at)
    assert empty_rt.settings == before and empty_rt.settings_history() == []
    assert any("cancelled" in s.value for s in at.success)
    assert not [b for b in at.button if b.key == "s_confirm_risky"]


def test_a_safe_change_needs_no_confirmation(empty_rt: Runtime) -> None:
    at = open_page("settings")
    at.number_input(key="s_max_actions_per_hour").set_value(3)  # lower: safer
    at.text_input(key="s_excluded_namespaces").set_value("kube-system, monitoring, batch")  # one more excluded
    _save(at)
    no_exception(at)
    assert empty_rt.settings.max_actions_per_hour == 3 and "batch" in empty_rt.settings.excluded_namespaces
    assert "confirmed" not in empty_rt.settings_history()[0]
