"""Automatic remediation: the decisions of one poll for the groups that matched a rule.

Every decision goes through :meth:`Remediator.handle` (the pure policy, the audit); this service
picks which changes get one, caps the alert-only records per poll, stops at once when the lease
lapses, and tells the group, the event bus and the notifier what was done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sentinel.core.model import ErrorGroup, RemediationRecord, Result, Status
from sentinel.core.rules import RuleSet
from sentinel.engine.events import EventBus
from sentinel.engine.incidents import Incidents
from sentinel.engine.leadership import Leadership
from sentinel.notify.notifier import Notifier
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import GroupChange, Store

log = logging.getLogger(__name__)

# Alert-only (action none) records per poll; the groups past it share one summary record, so a
# first start on a busy cluster does not flood the audit log or the notifications.
ALERTS_PER_POLL = 200


def outcome_of(record: RemediationRecord) -> str:
    """How one decision ended, for the poll's summary line: ``denied:<code>``, ``alert``, ``dry-run`` ..."""
    if record.decision == "denied":
        return f"denied:{record.reason_code or 'other'}"
    if record.action == "none":
        return "alert"
    if record.dry_run and record.result is Result.SUCCESS:
        return "dry-run"
    return record.result.value


class AutoRemediation:
    """Decides, for each group change of a poll, whether its rule acts; and records what was done."""

    def __init__(
        self,
        *,
        remediator: Remediator,
        rules: Callable[[], RuleSet],
        leadership: Leadership,
        store: Store,
        events: EventBus,
        notifier: Notifier,
        incidents: Callable[[], Incidents],
        alerts_per_poll: int = ALERTS_PER_POLL,
    ) -> None:
        self._remediator = remediator
        self._rules = rules
        self._leadership = leadership
        self._store = store
        self._events = events
        self._notifier = notifier
        self._incidents = incidents
        self.alerts_per_poll = alerts_per_poll
        self.last_outcomes: dict[str, int] = {}  # the last poll's decisions by outcome

    def run(self, changes: list[GroupChange]) -> int:
        """Automatic decisions for groups that matched a rule; ``none`` rules are recorded as alert only.

        One safety-state load and save for the whole poll (``Remediator.poll``). Alert-only records
        are capped at ``alerts_per_poll`` per poll; the groups past the cap get one summary record.
        ``last_outcomes`` counts the decisions by outcome (logged in the poll's INFO line).
        """
        self.last_outcomes = {}
        if not self._leadership.leading:
            return 0
        rules = self._rules()
        cap = self.alerts_per_poll
        decided = 0
        alerts = 0
        over_cap: list[ErrorGroup] = []
        outcomes: dict[str, int] = {}
        with self._remediator.poll():
            for c in changes:
                if not self._leadership.is_leader():  # the lease may lapse during a long poll: stop acting at once
                    self._leadership.lost()
                    log.warning(
                        "leadership lost during the poll: %d group changes left to the next leader",
                        len(changes) - decided,
                    )
                    break
                g = c.group
                if g.status in (Status.ACKNOWLEDGED, Status.SNOOZED):
                    continue
                rule = rules.by_name(g.rule)
                if rule is None or rule.name == "default":
                    continue
                if rule.action == "none":
                    if c.kind == "updated":
                        continue  # alert only: recorded when a group appears, regresses or escalates
                    if alerts >= cap:
                        over_cap.append(g)
                        continue
                    alerts += 1
                # remediation.when (new_since_rollout): a refusal decide() audits, and the revision to go to
                refused, params = self._incidents().gate(rule, g, rule.params)
                record = self._remediator.handle(
                    g, rule=rule.name, action=rule.action, params=params, cooldown=rule.cooldown, refused=refused
                )
                self.recorded(record)
                decided += 1
                outcome = outcome_of(record)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if over_cap:
                summary = self._remediator.alert_summary(over_cap, cap=cap)
                self._events.publish("remediation", summary.to_dict())
                outcomes["alerts-over-cap"] = len(over_cap)
        self.last_outcomes = outcomes
        return decided

    def recorded(self, record: RemediationRecord) -> None:
        """After any decision (automatic or asked for): count a real success on its group, publish, notify."""
        if record.decision == "allowed" and record.result.value == "success" and not record.dry_run:
            when = record.time

            def count_it(g: ErrorGroup) -> None:
                g.remediations += 1
                g.last_remediation_at = when

            self._store.update_group(record.group_id, count_it)  # atomic with a concurrent record()
        self._events.publish("remediation", record.to_dict())
        if record.decision == "allowed" and record.action != "none":
            self._notifier.remediation(record, self._store.get_group(record.group_id))
