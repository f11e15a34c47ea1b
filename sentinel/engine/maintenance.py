"""Every minute: impact and lifecycle for all groups, effectiveness verdicts, retention, templates, flush."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sentinel.config import RetentionConfig
from sentinel.core.impact import LifecycleSettings, refresh
from sentinel.core.model import ErrorGroup
from sentinel.engine.events import EventBus, group_summary
from sentinel.engine.leadership import Leadership
from sentinel.engine.rulebook import Rulebook
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Store

log = logging.getLogger(__name__)


class Maintenance:
    """The periodic upkeep of the store and of the remediation verdicts."""

    def __init__(
        self,
        *,
        store: Store,
        rulebook: Rulebook,
        remediator: Remediator,
        leadership: Leadership,
        events: EventBus,
        retention: RetentionConfig,
        lifecycle: LifecycleSettings,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._rulebook = rulebook
        self._remediator = remediator
        self._leadership = leadership
        self._events = events
        self._retention = retention
        self._lifecycle = lifecycle
        self._clock = clock

    def run(self) -> None:
        """Impact/lifecycle for all groups, effectiveness verdicts (the leader's), retention, flush."""
        now = self._clock()
        lifecycle = self._lifecycle

        def touch(g: ErrorGroup) -> bool:
            before = (g.status, g.priority, g.escalated)
            refresh(g, now=now, settings=lifecycle)
            return (g.status, g.priority, g.escalated) != before

        for g in self._store.update_groups(touch):
            self._events.publish("error.updated", {**group_summary(g), "change": "lifecycle"})
        if self._leadership.leading:
            for record in self._remediator.evaluate_effectiveness(self._store.get_group, now):
                self._events.publish("remediation", record.to_dict())
        r = self._retention
        removed = self._store.apply_retention(
            now=now, max_age=r.max_age, max_groups=r.max_groups, max_records=r.max_records
        )
        if removed:
            log.info("retention removed %d groups", removed)
        self._rulebook.save_templates()
        self._store.flush()
