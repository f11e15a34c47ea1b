"""What people ask of the engine: a status change of a group, an action on it, a settings change, a breaker reset.

A requested action takes the same road as an automatic one (:meth:`Remediator.handle`: the pure
policy, the audit). On a follower replica whose store is shared (PostgreSQL), an action, a
settings change and a breaker reset go to the leader through the store's command queue
(:mod:`sentinel.engine.relay`), and the leader runs them here, through the same methods
(:meth:`Commands.run_queued`). With a store that is not shared, a follower refuses them: the
policy itself refuses the action and the audit says so.
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
from sentinel.engine.leadership import Leadership
from sentinel.engine.live_settings import LiveSettings
from sentinel.engine.relay import EXPIRES_AFTER, STALE_AFTER, Relay, raise_refusal, refused
from sentinel.errors import ConfigError, SafetyRefused, SentinelError, cap
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Command, CommandQueue, CommandState, Store

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
        leadership: Leadership,
        queue: CommandQueue | None = None,
        identity: Callable[[], str] = lambda: "",
    ) -> None:
        self._store = store
        self._rules = rules
        self._remediator = remediator
        self._remediation = remediation
        self._settings = settings
        self._events = events
        self._clock = clock
        self._leadership = leadership
        self._identity = identity
        # A follower's way to the leader (None with a store that replicas do not share).
        self.relay = Relay(queue, identity=identity, clock=clock) if queue is not None else None

    def _to_leader(self) -> Relay | None:
        """The relay when this replica is a follower with a shared store: its changes go to the leader."""
        if self.relay is None or self._leadership.elector is None or self._leadership.leading:
            return None
        return self.relay

    def _follower_refusal(self, what: str) -> SafetyRefused:
        holder = self._leadership.holder or "none right now"
        return SafetyRefused(f"this replica is a follower: {what} on the leader ({holder})")

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
        """A person asks for an action on a group: same decision, same audit (on the leader, for a
        follower with a shared store: :class:`~sentinel.engine.relay.Queued` if it has not answered yet)."""
        group = self._store.get_group(group_id)
        if group is None:
            raise KeyError(group_id)
        relay = self._to_leader()
        if relay is not None:
            cmd = relay.ask("action", {"group_id": group.id, "action": action, "params": params}, by=by)
            if cmd.state != "done" or cmd.result is None:
                raise_refusal(cmd)
            record = RemediationRecord.from_dict(cmd.result["record"])
            # the follower's /ws clients hear of it as the leader's do (the leader counted and notified)
            self._events.publish("remediation", record.to_dict(), now=self._clock())
            return record
        return self._request_action(group, action=action, params=params, by=by)

    def _request_action(
        self, group: ErrorGroup, *, action: str | None, params: dict[str, Any] | None, by: str
    ) -> RemediationRecord:
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
        """A settings change, applied by the live settings (see :meth:`LiveSettings.update`); on a
        follower with a shared store, by the leader (bad fields are named here first)."""
        relay = self._to_leader()
        if relay is None:
            return self._settings.update(data, by=by, confirmed=confirmed)
        self._settings.validate(data)
        cmd = relay.ask("settings", {"change": data, "confirmed": list(confirmed)}, by=by)
        if cmd.state != "done" or cmd.result is None:
            raise_refusal(cmd)
        self._settings.follow_store()  # the leader saved them: show them here at once
        changed: dict[str, list[Any]] = cmd.result["changed"]
        if changed:  # this replica's /ws clients hear of it too (the leader's heard it from the leader)
            who = f"{by} via {cmd.via}" if cmd.via else by
            self._events.publish(
                "settings", {"by": who, "changes": changed, "settings": self._settings.current.to_dict()}
            )
        return changed

    def reset_breaker(self, workload: str, *, by: str) -> bool:
        """A person closes ``workload``'s breaker; True if it was open. ``KeyError`` when it has none;
        ``SafetyRefused`` on a follower whose store is not shared (its safety state decides nothing)."""
        if workload not in self._remediator.state().breakers:
            raise KeyError(workload)
        relay = self._to_leader()
        if relay is not None:
            cmd = relay.ask("breaker_reset", {"workload": workload}, by=by)
            if cmd.state != "done" or cmd.result is None:
                raise_refusal(cmd)
            was_open = bool(cmd.result["was_open"])
            self._publish_reset(workload, by=f"{by} via {cmd.via}" if cmd.via else by, was_open=was_open)
            return was_open
        return self._reset_breaker(workload, by=by)

    def _reset_breaker(self, workload: str, *, by: str) -> bool:
        if workload not in self._remediator.state().breakers:
            raise KeyError(workload)
        if not self._leadership.is_leader():
            raise self._follower_refusal("reset the breaker")
        was_open = self._remediator.reset_breaker(workload, by=by)
        self._store.flush()
        self._publish_reset(workload, by=by, was_open=was_open)
        return was_open

    def _publish_reset(self, workload: str, *, by: str, was_open: bool) -> None:
        state = self._remediator.state()
        b = state.breakers.get(workload)
        breaker = {
            "workload": workload,
            "state": "open" if b is not None and b.open else "closed",
            "reason": b.reason if b is not None else "",
            "opened_at": b.opened_at if b is not None else None,
            "reset_by": b.reset_by if b is not None else by,
            "reset_at": b.reset_at if b is not None else None,
            "ineffective": state.ineffective.get(workload, 0),
        }
        self._events.publish(
            "remediation",
            {"event": "breaker.reset", "workload": workload, "by": by, "was_open": was_open, "breaker": breaker},
            now=self._clock(),
        )

    # -- the leader's side of the queue -------------------------------------------------------------

    def run_queued(self) -> int:
        """On the leader: run what followers queued, each through the same path as a local request;
        how many were answered. A command is marked taken (committed) before it runs: a crash halfway
        leaves it "running", and it is never run twice (the queue later finishes it as failed)."""
        queue = self.relay.queue if self.relay is not None else None
        if queue is None or not self._leadership.is_leader():
            return 0
        me = self._identity() or "leader"
        taken = queue.take_commands(by=me, now=self._clock(), stale_after=STALE_AFTER)
        for cmd in taken:
            state, result = self._run_one(cmd)
            queue.finish_command(cmd.id, state=state, result=result, by=me, now=self._clock())
            log.info("command %s (%s by %s via %s): %s", cmd.id, cmd.kind, cmd.requested_by, cmd.via, state)
        return len(taken)

    def _run_one(self, cmd: Command) -> tuple[CommandState, dict[str, Any]]:
        age = self._clock() - cmd.requested_at
        if age > EXPIRES_AFTER:
            return "refused", refused(
                "expired",
                f"expired: asked {age:.0f}s ago on {cmd.via or 'a follower'}; the leader runs a follower's "
                f"change only within {EXPIRES_AFTER:.0f}s of asking: nothing was done, ask again",
            )
        by = f"{cmd.requested_by} via {cmd.via}" if cmd.via else cmd.requested_by
        p = cmd.payload
        try:
            if cmd.kind == "settings":
                changed = self._settings.update(dict(p.get("change") or {}), by=by, confirmed=p.get("confirmed") or ())
                return "done", {"changed": changed}
            if cmd.kind == "breaker_reset":
                return "done", {"was_open": self._reset_breaker(str(p.get("workload", "")), by=by)}
            group = self._store.get_group(str(p.get("group_id", "")))
            if group is None:
                raise KeyError(p.get("group_id"))
            record = self._request_action(group, action=p.get("action"), params=p.get("params"), by=by)
            return "done", {"record": record.to_dict()}
        except KeyError as err:
            key = err.args[0] if err.args else ""
            return "refused", refused("not_found", f"not found: {key}", key=key)
        except ConfigError as err:
            return "refused", refused("invalid", str(err).split("\n", 1)[0], problems=err.problems)
        except ValueError as err:
            return "refused", refused("invalid", str(err), problems=[str(err)])
        except SafetyRefused as err:
            return "refused", refused("refused", err.reason)
        except SentinelError as err:
            return "failed", refused("failed", cap(err, 512))
        except Exception as err:  # a bug must not stop the queue; logged with its traceback
            log.exception("command %s (%s) crashed", cmd.id, cmd.kind)
            return "failed", refused("internal", cap(f"{type(err).__name__}: {err}", 512))

    def settings_history(self) -> list[dict[str, Any]]:
        return self._settings.history()
