"""Whether this replica leads: the one writer of "am I leader", and everything that asks the Lease.

Without leader election a replica always leads. With it, :class:`Leadership` holds the
:class:`~sentinel.engine.leader.LeaderElector` and records what it last learned in one place
(:attr:`Leadership.leading`, what ``Health.leader`` and ``Runtime.read_only`` show):

- a lease round (:meth:`tick`, every ``renew_every`` on the scheduler, and at start);
- the scheduler's check before each poll (:meth:`confirm`);
- a lease that lapsed during a poll (:meth:`lost`), or could not carry an action (:meth:`before_action`);
- the Lease released on a clean stop (:meth:`release`).
"""

from __future__ import annotations

import logging
from typing import Any

from sentinel.engine.events import EventBus
from sentinel.engine.leader import LeaderElector

log = logging.getLogger(__name__)


class Leadership:
    """Who leads, for one replica. ``is_leader()`` asks the elector now; ``leading`` is the recorded answer."""

    def __init__(self, *, events: EventBus, elector: LeaderElector | None = None) -> None:
        self._events = events
        self._elector: LeaderElector | None = None
        self._leading = True
        if elector is not None:
            self.use(elector)

    @property
    def elector(self) -> LeaderElector | None:
        return self._elector

    @property
    def leading(self) -> bool:
        """What this replica last knew: True while it leads (always, without leader election)."""
        return self._leading

    def _record(self, leading: bool, *, announce: bool = False) -> None:
        changed = leading != self._leading
        self._leading = leading
        if changed and announce:
            self._events.publish("health", {"ok": True, "leader": leading, "role": self.role})

    @property
    def role(self) -> str:
        return "leader" if self._leading else "follower: read-only"

    def use(self, elector: LeaderElector) -> None:
        """Poll and remediate only while ``elector`` holds the Lease; read-only until it first does."""
        self._elector = elector
        self._record(False)

    # -- asking -----------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """Whether the elector holds the Lease right now (no I/O); True without leader election."""
        return self._elector is None or self._elector.is_leader()

    @property
    def holder(self) -> str:
        """Who holds the Lease as last read ("" without leader election, or when nobody does)."""
        return self._elector.holder if self._elector is not None else ""

    def who_leads(self) -> tuple[bool, str]:
        """(this replica leads, who does): what the safety policy decides a request on."""
        return self.is_leader(), self.holder

    def status(self) -> dict[str, Any]:
        """Who leads: the elector's view, or "leader" when leader election is off."""
        if self._elector is None:
            return {"enabled": False, "leader": True, "role": "leader"}
        return self._elector.status()

    # -- recording --------------------------------------------------------------------------------

    def tick(self) -> bool:
        """One leader-election round; whether we lead now (announced on the event bus when it changed)."""
        if self._elector is None:
            return self._leading
        leading = self._elector.tick()
        self._record(leading, announce=True)
        return leading

    def confirm(self) -> bool:
        """Before a scheduled poll: whether we still lead, recorded."""
        leading = self.is_leader()
        self._record(leading)
        return leading

    def lost(self) -> None:
        """The lease lapsed during a poll: stop acting at once."""
        self._record(False)

    def before_action(self) -> bool:
        """Before each real action: the new cooldown goes into the Lease, and we still lead."""
        if self._elector is None:
            return True
        ok = self._elector.publish()
        if not ok:
            self._record(self._elector.is_leader())
            log.warning(
                "lease not written before an action (%s): the action is not taken",
                self._elector.last_error or "not leading",
            )
        return ok

    def release(self) -> None:
        """On a clean stop: hand the Lease back, so a follower takes over at once."""
        if self._elector is not None and self._elector.release():
            self._record(False)
