"""The live settings: the current values, a validated change (persisted, audited, applied), its history.

The table of settings, their bounds and their validation are :mod:`sentinel.engine.settings`'s;
this service holds the values the engine runs with and applies a change everywhere it matters:
the remediation limits, the LogQL query of the source (run once against Loki before it is
saved), and the poll interval (through the listeners the scheduler registers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sentinel.config import Config
from sentinel.core.impact import LifecycleSettings
from sentinel.engine.events import EventBus
from sentinel.engine.leadership import Leadership
from sentinel.engine.settings import (
    RuntimeSettings,
    apply_update,
    from_stored,
    limits_of,
    stored_overrides,
    validate_update,
)
from sentinel.errors import ConfigError, LokiQueryError, SafetyRefused, SentinelError, cap, redact
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Store

log = logging.getLogger(__name__)

HISTORY_KEPT = 200


def lifecycle_of(config: Config) -> LifecycleSettings:
    return LifecycleSettings(resolve_after=config.lifecycle.resolve_after, burst_factor=config.lifecycle.burst_factor)


class LiveSettings:
    """The settings the engine runs with: the file's, overridden by what people changed (persisted)."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        source: Callable[[], object],
        remediator: Remediator,
        leadership: Leadership,
        events: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._store = store
        self._source = source
        self._remediator = remediator
        self._leadership = leadership
        self._events = events
        self._clock = clock
        self._seen = store.get_state("settings")
        self._current, notes = from_stored(RuntimeSettings.from_config(config), self._seen)
        self._led = leadership.leading
        for note in notes:
            log.warning("%s", note)
        # Called with the new poll interval after a change (the scheduler, while it runs).
        self.poll_interval_listeners: list[Callable[[float], None]] = []
        remediator.set_limits(limits_of(config, self._current))
        self._apply_query(self._current.query)

    @property
    def current(self) -> RuntimeSettings:
        """The settings in force. A follower (and a replica that just took over) first takes in what the
        leader saved in a shared store, so its console shows, and its next poll uses, the leader's values."""
        leading = self._leadership.leading
        if not leading or leading != self._led:
            self._led = leading
            self.follow_store()
        return self._current

    def follow_store(self) -> None:
        """Take in the stored overrides when another replica changed them (nothing when they did not)."""
        stored = self._store.get_state("settings")
        if stored == self._seen:
            return
        self._seen = stored
        new, _ = from_stored(RuntimeSettings.from_config(self._config), stored)
        old, self._current = self._current, new
        self._remediator.set_limits(limits_of(self._config, new))
        if new.poll_interval != old.poll_interval:
            for listener in list(self.poll_interval_listeners):
                listener(new.poll_interval)
        if new.query != old.query:
            self._apply_query(new.query)

    def validate(self, data: dict[str, Any]) -> None:
        """``ConfigError`` naming every bad field of ``data`` (nothing is applied)."""
        validate_update(data)

    def update(self, data: dict[str, Any], *, by: str, confirmed: Sequence[str] = ()) -> dict[str, list[Any]]:
        """Validate all, apply all, persist, record who (and the risky changes they confirmed, by name).
        ``ConfigError`` names every bad field; ``SafetyRefused`` on a follower replica (its settings
        would not reach the leader: with a shared store, :class:`~sentinel.engine.commands.Commands`
        sends them there instead)."""
        update = validate_update(data)
        if not self._leadership.leading:
            holder = self._leadership.status().get("holder") or "unknown"
            raise SafetyRefused(f"follower: read-only; change settings on the leader ({holder})")
        self.follow_store()  # a change made through the leader since: compare with what is in force
        new, changes = apply_update(self._current, update)
        if not changes:
            return {}
        if "query" in changes:
            self._check_query(new.query)
        stored = stored_overrides(
            self._store.get_state("settings"), changes, file_values=RuntimeSettings.from_config(self._config)
        )
        self._store.put_state("settings", stored)
        self._seen = stored
        history = (self._store.get_state("settings_history") or {}).get("entries", [])
        entry: dict[str, Any] = {"time": self._clock(), "by": by, "changes": changes}
        if confirmed:
            entry["confirmed"] = list(confirmed)
        history.append(entry)
        self._store.put_state("settings_history", {"entries": history[-HISTORY_KEPT:]})
        self._current = new
        self._remediator.set_limits(limits_of(self._config, new))
        if "poll_interval" in changes:
            for listener in list(self.poll_interval_listeners):
                listener(new.poll_interval)
        if "query" in changes:
            self._apply_query(new.query)
        self._store.flush()
        log.info("settings changed by %s: %s", by, ", ".join(sorted(changes)))
        self._events.publish("settings", {"by": by, "changes": changes, "settings": new.to_dict()})
        return changes

    def history(self) -> list[dict[str, Any]]:
        return list((self._store.get_state("settings_history") or {}).get("entries", []))

    def _check_query(self, query: str) -> None:
        """A new LogQL query runs once against Loki (a one-second range) before it is saved."""
        check = getattr(self._source(), "check_query", None)
        if not callable(check):
            return  # a file or demo source runs no query
        try:
            check(query)
        except LokiQueryError as err:
            problem = f"query: {cap(redact(err), 500)}"
            raise ConfigError("settings: invalid change, nothing was saved", problems=[problem]) from None
        except SentinelError as err:
            problem = f"query: cannot be checked against Loki, so it was not saved: {cap(redact(err), 300)}"
            raise ConfigError("settings: invalid change, nothing was saved", problems=[problem]) from None

    def _apply_query(self, query: str) -> None:
        """The LogQL query the source runs (a file or demo source has none)."""
        set_query = getattr(self._source(), "set_query", None)
        if callable(set_query):
            set_query(query)
