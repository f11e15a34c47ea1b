"""The process-wide Runtime: a thin facade over the engine's services, and the process singleton.

:func:`sentinel.bootstrap.build_runtime` builds it from the files; ``start()`` starts the
scheduler; with ``leader_election.enabled`` it also holds (or waits for) the Lease, and polls and
remediates only while it leads; ``poll_once()`` is one engine cycle (also what ``run --once``
does). The console and the API read through the runtime; they never open the store file.

Each concern has one owner, composed here::

    poll.PollCycle            window, fetch, pipeline, record, cursor, late lines, counts
    autoremediate.AutoRemediation   the decisions of a poll (through the Remediator)
    maintenance.Maintenance   lifecycle, effectiveness verdicts, retention, flush
    rulebook.Rulebook         the current pipeline: rules reload, templates saved
    live_settings.LiveSettings   the settings in force, a change applied everywhere
    commands.Commands         status changes, requested actions, settings changes, breaker resets,
                              and (on the leader) what followers queued in a shared store
    leadership.Leadership     the one writer of "am I leader"
    health                    Health, /ready and the poll state

Pages are separate script runs in Streamlit: they find the already-started runtime with
:func:`current`. :func:`install` is called once by whoever built it (the CLI, the ASGI lifespan,
or ``app.py`` for a bare ``streamlit run``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sentinel.config import Config
from sentinel.core.model import ErrorGroup, RemediationRecord
from sentinel.core.rules import RuleSet
from sentinel.engine.autoremediate import AutoRemediation
from sentinel.engine.commands import Commands
from sentinel.engine.context import ContextReader, summary_line
from sentinel.engine.events import EventBus
from sentinel.engine.health import Health, poll_state, ready
from sentinel.engine.incidents import Incidents
from sentinel.engine.leader import LeaderElector
from sentinel.engine.leadership import Leadership
from sentinel.engine.live_settings import LiveSettings, lifecycle_of
from sentinel.engine.maintenance import Maintenance
from sentinel.engine.pipeline import Pipeline
from sentinel.engine.poll import MS, NS, PollCycle, PollResult, Source
from sentinel.engine.relay import COMMANDS_EVERY
from sentinel.engine.rulebook import Rulebook
from sentinel.engine.scheduler import Scheduler
from sentinel.engine.settings import RuntimeSettings
from sentinel.errors import SentinelError
from sentinel.notify.notifier import Notifier
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import Store, command_queue

__all__ = ["MS", "NS", "PollResult", "Runtime", "Source", "current", "install", "uninstall"]

log = logging.getLogger(__name__)

NOTIFY_CONTEXT_WAIT = 3.0  # seconds a notification waits for its group's Kubernetes context


class Runtime:
    """Owns every long-lived object of one Kube Sentinel process; each concern is a service of its own."""

    def __init__(
        self,
        *,
        config: Config,
        pipeline: Pipeline,
        store: Store,
        source: Source,
        remediator: Remediator,
        context: ContextReader | None = None,
        config_path: str = "",
        rules_path: str = "",
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
        warnings: list[str] | None = None,
        description: str = "",
        stopping: threading.Event | None = None,
        notifier: Notifier | None = None,
        cluster_state: str = "not configured",
        elector: LeaderElector | None = None,
        incidents: Incidents | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.store = store
        self.source = source
        self.remediator = remediator
        self.clock = clock
        self.events = events or EventBus()
        self.warnings = list(warnings or [])
        self.description = description
        self.stopping = stopping or threading.Event()
        self.context = context or ContextReader(None, clock=clock)
        # Deploy correlation and pod status as a second source (the demo swaps in a recorded cluster).
        self.incidents = incidents or Incidents.idle(store=store, clock=clock)
        self.notifier = notifier or Notifier.from_config(config, clock=clock, context=self._context_summary)
        self.scheduler: Scheduler | None = None  # once started

        self.leader_state = Leadership(events=self.events)
        self.health = Health(started_at=clock(), cluster=cluster_state, leading=lambda: self.leader_state.leading)
        self.lifecycle = lifecycle_of(config)
        self.rulebook = Rulebook(
            pipeline, rules_path=rules_path, store=store, health=self.health, events=self.events, clock=clock
        )
        self.live_settings = LiveSettings(
            config=config,
            store=store,
            source=lambda: self.source,
            remediator=remediator,
            leadership=self.leader_state,
            events=self.events,
            clock=clock,
        )
        self.autoremediation = AutoRemediation(
            remediator=remediator,
            rules=lambda: self.rulebook.rules,
            leadership=self.leader_state,
            store=store,
            events=self.events,
            notifier=self.notifier,
            incidents=lambda: self.incidents,
        )
        self.poller = PollCycle(
            config=config,
            store=store,
            source=lambda: self.source,
            rulebook=self.rulebook,
            remediation=self.autoremediation,
            leadership=self.leader_state,
            health=self.health,
            events=self.events,
            context=lambda: self.context,
            incidents=lambda: self.incidents,
            notifier=self.notifier,
            settings=lambda: self.live_settings.current,
            lifecycle=self.lifecycle,
            clock=clock,
            stopping=self.stopping,
        )
        self.maintenance = Maintenance(
            store=store,
            rulebook=self.rulebook,
            remediator=remediator,
            leadership=self.leader_state,
            events=self.events,
            retention=config.retention,
            lifecycle=self.lifecycle,
            clock=clock,
        )
        self.commands = Commands(
            store=store,
            rules=lambda: self.rulebook.rules,
            remediator=remediator,
            remediation=self.autoremediation,
            settings=self.live_settings,
            events=self.events,
            clock=clock,
            leadership=self.leader_state,
            queue=command_queue(store),  # shared store: a follower's changes go to the leader
            identity=lambda: self.elector.identity if self.elector is not None else "",
        )
        remediator.leader = self.leader_state.who_leads
        if elector is not None:
            self.use_elector(elector)

    def _context_summary(self, namespace: str, workload: str) -> str:
        """For a notification, on the notifier's thread: waits briefly for the context read."""
        return summary_line(self.context.get(namespace, workload, wait=NOTIFY_CONTEXT_WAIT))

    def use_elector(self, elector: LeaderElector) -> None:
        """Poll and remediate only while ``elector`` holds the Lease; read-only until it first does."""
        self.leader_state.use(elector)
        # Before each real action: the new cooldown goes into the Lease, and we still lead.
        self.remediator.before_act = self.leader_state.before_action

    # -- what the API and the console read ----------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        return self.rulebook.pipeline

    @property
    def rules(self) -> RuleSet:
        return self.rulebook.rules

    @property
    def rules_path(self) -> str:
        return self.rulebook.rules_path

    @rules_path.setter
    def rules_path(self, path: str) -> None:
        """Read the rules from ``path`` from the next reload on."""
        self.rulebook.rules_path = path

    @property
    def settings(self) -> RuntimeSettings:
        return self.live_settings.current

    @property
    def rule_hits(self) -> dict[str, int]:
        return self.poller.rule_hits

    @property
    def last_outcomes(self) -> dict[str, int]:
        """The last poll's decisions by outcome."""
        return self.autoremediation.last_outcomes

    @property
    def elector(self) -> LeaderElector | None:
        return self.leader_state.elector

    @property
    def read_only(self) -> bool:
        """True when this replica is not the leader: it serves, but does not poll or remediate."""
        return not self.leader_state.leading

    def leader_check(self) -> bool:
        """Whether this replica holds the Lease right now (True without leader election)."""
        return self.leader_state.is_leader()

    def leadership(self) -> dict[str, Any]:
        """Who leads: the elector's view, or "leader" when leader election is off."""
        return self.leader_state.status()

    def ready(self) -> tuple[bool, dict[str, str]]:
        """(ready, {check: problem}) for /ready (see :func:`sentinel.engine.health.ready`)."""
        return ready(self.store, self.health)

    def poll_state(self) -> tuple[str, str]:
        """("ok" | "waiting" | "failing" | "stale" | "follower", why): how reading the logs goes."""
        return poll_state(self.health, poll_interval=self.settings.poll_interval, now=self.clock())

    # -- the engine's jobs (sentinel.engine.scheduler.Jobs) ---------------------------------------

    def window(self, now: float) -> tuple[int, int]:
        return self.poller.window(now)

    def poll_once(self) -> PollResult:
        """One cycle: fetch the window, group, store, remediate, publish. Never raises SentinelError."""
        return self.poller.poll_once()

    def scheduled_poll(self) -> PollResult | None:
        """The scheduler's poll: only while this replica leads, and not once it is stopping."""
        if not self.leader_state.confirm():
            return None
        result = self.poll_once()
        return None if self.stopping.is_set() else result

    def maintain(self) -> None:
        self.maintenance.run()

    def reload_rules(self, *, force: bool = False) -> tuple[bool, str]:
        return self.rulebook.reload(force=force)

    def save_fingerprinter(self) -> None:
        self.rulebook.save_templates()

    def lease_tick(self) -> bool:
        """One leader-election round (the scheduler runs it every ``renew_every``); whether we lead now."""
        return self.leader_state.tick()

    def lease_every(self) -> float | None:
        elector = self.leader_state.elector
        return elector.renew_every if elector is not None else None

    def run_commands(self) -> int:
        """On the leader: run what followers queued in the shared store (see :meth:`Commands.run_queued`)."""
        if self.stopping.is_set():
            return 0
        return self.commands.run_queued()

    def commands_every(self) -> float | None:
        """Seconds between looks at the command queue; None without one (no shared store, or no election)."""
        shared = self.commands.relay is not None and self.leader_state.elector is not None
        return COMMANDS_EVERY if shared else None

    # -- people's commands ------------------------------------------------------------------------

    def update_settings(self, data: dict[str, Any], *, by: str, confirmed: Sequence[str] = ()) -> dict[str, list[Any]]:
        return self.commands.update_settings(data, by=by, confirmed=confirmed)

    def settings_history(self) -> list[dict[str, Any]]:
        return self.commands.settings_history()

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
        return self.commands.set_status(group_id, action, by=by, reason=reason, until=until, more=more)

    def request_action(
        self, group_id: str, *, action: str | None = None, params: dict[str, Any] | None = None, by: str
    ) -> RemediationRecord:
        return self.commands.request_action(group_id, action=action, params=params, by=by)

    def reset_breaker(self, workload: str, *, by: str) -> bool:
        return self.commands.reset_breaker(workload, by=by)

    # -- lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        self.store.serving()  # a large store reads its groups from now on, in the background
        if self.scheduler is None:
            if self.leader_state.elector is not None:
                self.lease_tick()  # know who leads before the first poll is due
            self.scheduler = Scheduler(self, poll_interval=self.settings.poll_interval)
            self.live_settings.poll_interval_listeners.append(self.scheduler.set_poll_interval)
            self.scheduler.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.scheduler is not None:
            self.scheduler.shutdown()
            listeners = self.live_settings.poll_interval_listeners
            if self.scheduler.set_poll_interval in listeners:
                listeners.remove(self.scheduler.set_poll_interval)
            self.scheduler = None
        with self.poller.lock:  # wait for a running poll to finish or abandon
            pass
        self.leader_state.release()  # the follower takes over at once
        self.notifier.stop()
        self.context.stop()
        self.incidents.stop()
        try:
            self.rulebook.save_templates()
            self.store.close()
        except SentinelError as err:
            log.error("store close failed: %s", err)


# -- the process-wide runtime (for Streamlit pages, which run as separate scripts) -------------

_current: Runtime | None = None
_current_lock = threading.Lock()


def install(runtime: Runtime) -> None:
    global _current
    with _current_lock:
        _current = runtime


def current() -> Runtime | None:
    return _current


def uninstall() -> None:
    global _current
    with _current_lock:
        _current = None
