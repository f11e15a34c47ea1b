"""The engine's state as the console's health row and banners read it: one snapshot per page run.

:func:`engine_status` reads everything the banners need once (no network), so the console's
health code depends on this snapshot, not on the whole runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.config import Config
from sentinel.core.policy import REMEDIATOR
from sentinel.engine.health import Health, SourceCounts
from sentinel.engine.settings import RuntimeSettings
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Store, command_queue


class StatusSource(Protocol):
    """What :func:`engine_status` reads (the process-wide runtime is one)."""

    config: Config
    store: Store
    remediator: Remediator
    health: Health
    description: str
    clock: Callable[[], float]

    @property
    def source(self) -> Any: ...

    @property
    def settings(self) -> RuntimeSettings: ...

    @property
    def read_only(self) -> bool: ...

    def ready(self) -> tuple[bool, dict[str, str]]: ...

    def poll_state(self) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class EngineStatus:
    now: float
    config: Config
    settings: RuntimeSettings
    health: Health
    follower: bool  # another replica leads: this one neither polls nor acts
    source_name: str  # "Loki", "Log source (demo file)" ...
    store_writable: tuple[bool, str]
    store_notices: tuple[str, ...]
    halted: str  # why the whole remediator is halted, or ""
    open_breakers: dict[str, dict[str, object]]  # per workload (the remediator-wide one is ``halted``)
    ready: tuple[bool, dict[str, str]]
    poll_state: tuple[str, str]
    description: str
    # a follower whose store is shared: its changes (settings, breaker resets, actions) run on the leader
    relays_changes: bool = False

    @property
    def counts(self) -> SourceCounts:
        return self.health.counts


def source_name(source: Any) -> str:
    describe = getattr(source, "describe", None)
    if callable(describe):
        text = str(describe())
        if text.startswith("file"):
            return "Log source (demo file)" if "demo" in text else "Log source (file)"
    return "Loki"


def engine_status(rt: StatusSource) -> EngineStatus:
    safety = rt.remediator.state()
    return EngineStatus(
        now=rt.clock(),
        config=rt.config,
        settings=rt.settings,
        health=rt.health,
        follower=rt.read_only,
        source_name=source_name(rt.source),
        store_writable=rt.store.writable(),
        store_notices=tuple(rt.store.health().notices),
        halted=safety.breakers[REMEDIATOR].reason if safety.halted else "",
        open_breakers={w: b.to_dict() for w, b in sorted(safety.breakers.items()) if b.open and w != REMEDIATOR},
        ready=rt.ready(),
        poll_state=rt.poll_state(),
        description=rt.description,
        relays_changes=rt.read_only and command_queue(rt.store) is not None,
    )
