"""Issue 10, "one authority": without ``api.token`` the API is read-only, and so is the console, unless
``console.allow_changes_without_token`` is set explicitly (the demo's config does; a banner says so)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sentinel.api.app import create_app
from sentinel.core.model import Status
from sentinel.core.policy import Breaker
from sentinel.engine.runtime import Runtime
from sentinel.store.base import GroupQuery, RecordQuery
from tests.api.conftest import Served, serve
from tests.ui.conftest import no_exception, open_page, readable, texts

READ_ONLY = "the console is read-only: no api.token is configured"


def lock(rt: Runtime) -> Runtime:
    """The demo without its explicit permission: no token, so nothing may change (as in the API)."""
    rt.config.console.allow_changes_without_token = False
    return rt


@pytest.fixture
def locked_rt(demo_rt: Runtime) -> Runtime:
    return lock(demo_rt)


@pytest.fixture
def locked_api(locked_rt: Runtime) -> Iterator[Served]:
    yield from serve(create_app(locked_rt), locked_rt)


def test_the_api_and_the_console_both_refuse_a_status_change(locked_rt: Runtime, locked_api: Served) -> None:
    gid = locked_rt.store.filtered_groups(GroupQuery())[0].id
    r = locked_api.client.patch(f"/api/errors/{gid}", json={"action": "acknowledge"})
    assert r.status_code == 403 and "read-only" in r.json()["detail"]

    at = open_page("errors", {"id": gid})
    assert at.button(key="ack").disabled and at.button(key="resolve").disabled
    assert "Read-only console" in texts(at)
    # A confirmation opened while changes were allowed is refused once they are not: checked on the change.
    locked_rt.config.console.allow_changes_without_token = True
    at.run()
    at.button(key="ack").click().run()
    lock(locked_rt)
    at.button(key="confirm").click().run()
    no_exception(at)
    assert any(READ_ONLY in readable(e.value).lower() for e in at.error), [e.value for e in at.error]
    g = locked_rt.store.get_group(gid)
    assert g is not None and g.status is Status.OPEN and not g.status_by


def test_the_console_refuses_a_requested_action_without_authority(locked_rt: Runtime) -> None:
    gid = locked_rt.store.filtered_groups(GroupQuery())[0].id
    before = locked_rt.store.list_remediations(RecordQuery(page_size=500)).total
    at = open_page("errors", {"id": gid})
    assert at.button(key="request").disabled
    locked_rt.config.console.allow_changes_without_token = True
    at.run()
    at.button(key="request").click().run()
    lock(locked_rt)
    at.button(key="confirm").click().run()
    no_exception(at)
    assert any(READ_ONLY in readable(e.value).lower() for e in at.error), [e.value for e in at.error]
    assert locked_rt.store.list_remediations(RecordQuery(page_size=500)).total == before


def test_the_console_refuses_settings_and_breaker_resets_without_authority(
    locked_rt: Runtime, locked_api: Served
) -> None:
    assert locked_api.client.post("/api/settings", json={"poll_interval": "30s"}).status_code == 403
    state = locked_rt.remediator.state()
    state.breakers["shop/checkout"] = Breaker(open=True, reason="3 ineffective actions", opened_at=locked_rt.clock())
    locked_rt.store.put_state("safety", state.to_dict())
    before = locked_rt.settings

    at = open_page("settings")
    assert at.button(key="FormSubmitter:settings-Save and apply").disabled
    locked_rt.config.console.allow_changes_without_token = True  # the form drawn while allowed ...
    at.run()
    at.text_input(key="s_poll_interval").set_value("30s")
    lock(locked_rt)  # ... is refused when saved without authority
    at.button(key="FormSubmitter:settings-Save and apply").click().run()
    no_exception(at)
    assert locked_rt.settings == before and locked_rt.settings_history() == []
    assert any(READ_ONLY in readable(e.value).lower() for e in at.error), [e.value for e in at.error]
    locked_rt.config.console.allow_changes_without_token = True
    at.run()
    lock(locked_rt)
    at.button(key="reset_shop/checkout").click().run()
    assert locked_rt.remediator.state().breaker_open("shop/checkout")
    assert any(READ_ONLY in readable(e.value).lower() for e in at.error), [e.value for e in at.error]


def test_explicit_permission_is_shown_in_a_banner(demo_rt: Runtime) -> None:
    assert demo_rt.config.console.allow_changes_without_token is True  # the demo's config says so
    at = open_page("overview")
    assert "Changes without a token" in texts(at) and "console.allow_changes_without_token" in texts(at)


def test_read_only_is_shown_in_a_banner(locked_rt: Runtime) -> None:
    assert "Read-only console" in texts(open_page("overview"))
