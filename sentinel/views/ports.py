"""The narrow parts of the engine the API's routes and the console's pages may use, as protocols.

The process-wide runtime satisfies each one; a route or page that asks for ``Commands`` can only
change a group's status or ask for an action, one that asks for ``SettingsPort`` only the live
settings. ``sentinel.api.deps`` and ``sentinel.ui.context`` hand them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sentinel.core.model import ErrorGroup, RemediationRecord
from sentinel.core.rules import RuleSet
from sentinel.engine.health import Health
from sentinel.engine.settings import RuntimeSettings


class Commands(Protocol):
    """What a person may ask for: status changes and manual actions on a group, breaker resets.

    On a follower with a shared store, an action or a reset runs on the leader; one that has not
    answered within a few seconds raises :class:`~sentinel.engine.relay.Queued`."""

    def set_status(
        self,
        group_id: str,
        action: str,
        *,
        by: str,
        reason: str = "",
        until: float | None = None,
        more: int | None = None,
    ) -> ErrorGroup: ...

    def request_action(
        self, group_id: str, *, action: str | None = None, params: dict[str, Any] | None = None, by: str
    ) -> RemediationRecord: ...

    def reset_breaker(self, workload: str, *, by: str) -> bool: ...


class SettingsPort(Protocol):
    """The live settings: read, history, change (validated whole)."""

    @property
    def settings(self) -> RuntimeSettings: ...

    def settings_history(self) -> list[dict[str, Any]]: ...

    def update_settings(
        self, data: dict[str, Any], *, by: str, confirmed: Sequence[str] = ()
    ) -> dict[str, list[Any]]: ...


class EngineChecks(Protocol):
    """The engine's own checks: ready (config, rules, store) and the poll's state."""

    @property
    def health(self) -> Health: ...

    def ready(self) -> tuple[bool, dict[str, str]]: ...

    def poll_state(self) -> tuple[str, str]: ...


class RulesView(Protocol):
    """The loaded rules, where they came from and how often each matched."""

    @property
    def rules(self) -> RuleSet: ...

    @property
    def rule_hits(self) -> dict[str, int]: ...

    @property
    def rules_path(self) -> str: ...

    @property
    def health(self) -> Health: ...
