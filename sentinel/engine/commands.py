"""What people ask of the engine: a status change of a group, an action on it, a settings change.

A requested action takes the same road as an automatic one (:meth:`Remediator.handle`: the pure
policy, the audit); on a follower replica the policy itself refuses it and the audit says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sentinel.core.actions import validate_params
from sentinel.core.impact import transition
from sentinel.core.model import ErrorGroup, RemediationRecord
from sentinel.core.rules import RuleSet
from sentinel.engine.autoremediate import AutoRemediation
from sentinel.engine.events import EventBus, group_summary
from sentinel.engine.live_settings import LiveSettings
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Store

log = logging.getLogger(__name__)


class Commands:
    """Operator commands; each is validated, audited and published."""

    def __init__(
        self,
        *,
        store: Store,
        rules: Callable[[], RuleSet],
        remediator: Remediator,
        remediation: AutoRemediation,
        settings: LiveSettings,
        events: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._rules = rules
        self._remediator = remediator
        self._remediation = remediation
        self._settings = settings
        self._events = events
        self._clock = clock

    def set_status(
        self,
        group_id: str,
        action: str,
        *,
        by: str,
        reason: str = "",
        until: float | None = None,
        more: int | None = None,
    ) -> ErrorGroup:
        """acknowledge | snooze | resolve | reopen. ``KeyError`` if unknown, ``ValueError`` if invalid."""
        now = self._clock()

        def change(g: ErrorGroup) -> None:
            transition(g, action, by=by, reason=reason, now=now, until=until, more=more)

        # Read, transition and write back under the store's lock: a poll's record() cannot slip in between.
        group = self._store.update_group(group_id, change)
        if group is None:
            raise KeyError(group_id)
        self._store.flush()
        self._events.publish("error.updated", {**group_summary(group), "change": action, "by": by})
        return group

    def request_action(
        self, group_id: str, *, action: str | None = None, params: dict[str, Any] | None = None, by: str
    ) -> RemediationRecord:
        """A person asks for an action on a group: same decision, same audit."""
        group = self._store.get_group(group_id)
        if group is None:
            raise KeyError(group_id)
        rule = self._rules().by_name(group.rule)
        name = action or (rule.action if rule else "none")
        checked = validate_params(
            name, params if params is not None else (dict(rule.params) if rule and name == rule.action else {})
        )
        record = self._remediator.handle(
            group,
            rule=group.rule,
            action=name,
            params=checked.model_dump(),
            cooldown=rule.cooldown if rule else 0.0,
            requested_by=by,
            manual=True,
        )
        self._remediation.recorded(record)
        self._store.flush()
        return record

    def update_settings(self, data: dict[str, Any], *, by: str, confirmed: Sequence[str] = ()) -> dict[str, list[Any]]:
        """A settings change, applied by the live settings (see :meth:`LiveSettings.update`)."""
        return self._settings.update(data, by=by, confirmed=confirmed)

    def settings_history(self) -> list[dict[str, Any]]:
        return self._settings.history()
