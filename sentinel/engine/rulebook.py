"""The current pipeline: the rules (reloaded from rules.yaml when it changes) and the mined templates.

A bad rules file keeps the previous rules and says why (``Health.rules_error``, /ready, the
console). The templates are saved in the store, so group keys survive a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sentinel.config import load_rules
from sentinel.core.fingerprint import Fingerprinter
from sentinel.core.rules import RuleSet
from sentinel.engine.events import EventBus
from sentinel.engine.health import Health
from sentinel.engine.pipeline import Pipeline
from sentinel.errors import ConfigError, cap
from sentinel.store.base import Store

log = logging.getLogger(__name__)

MAX_RULES_ERROR = 400  # characters of a rejected rules file's reason kept, logged and served
TEMPLATES_STATE = "fingerprinter"


class Rulebook:
    """Owns the :class:`Pipeline` the polls run; swaps in new rules on a reload."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        rules_path: str,
        store: Store,
        health: Health,
        events: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self.pipeline = pipeline
        self.rules_path = rules_path
        self._store = store
        self._health = health
        self._events = events
        self._clock = clock
        self._mtime = _mtime(rules_path)
        health.rules_loaded_at = clock()

    @property
    def rules(self) -> RuleSet:
        return self.pipeline.rules

    def reload(self, *, force: bool = False) -> tuple[bool, str]:
        """Reload rules.yaml if it changed; a bad file keeps the previous rules and says why."""
        mtime = _mtime(self.rules_path)
        if not force and mtime == self._mtime:
            return True, "unchanged"
        self._mtime = mtime
        h = self._health
        try:
            loaded = load_rules(self.rules_path)
        except Exception as err:  # noqa: BLE001 - whatever a file does, the previous rules stay
            # ConfigError names the problem; anything else (a bug, MemoryError) is named by its class.
            reason = str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
            reason = cap(" ".join(reason.split()), MAX_RULES_ERROR)
            h.rules_error = f"rules file {self.rules_path} rejected: {reason}; previous rules kept"
            h.rules_rejections += 1
            log.error("%s", h.rules_error)
            self._events.publish("health", {"ok": False, "error": h.rules_error})
            return False, reason
        self.pipeline = self.pipeline.with_rules(loaded.ruleset)
        h.rules_error = ""
        h.rules_loaded_at = self._clock()
        for w in loaded.warnings:
            log.warning("%s", w)
        log.info("rules reloaded from %s: %d enabled", self.rules_path, len(loaded.ruleset))
        return True, f"{len(loaded.ruleset)} rules loaded"

    def save_templates(self) -> None:
        """Persist the mined templates, so group keys survive a restart."""
        self._store.put_state(TEMPLATES_STATE, self.pipeline.fingerprinter.snapshot())


def restore_fingerprinter(store: Store) -> Fingerprinter:
    """The templates saved by :meth:`Rulebook.save_templates`, or a fresh miner."""
    snap = store.get_state(TEMPLATES_STATE)
    if snap:
        try:
            return Fingerprinter.restore(snap)
        except (ValueError, KeyError, TypeError) as err:
            log.warning("stored templates could not be restored (%s); starting fresh", cap(err))
    return Fingerprinter()


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime if path else 0.0
    except OSError:
        return 0.0
