"""The one owner of the persisted safety state: load, decide through :func:`decide`, note, save, under one lock.

Everything that reads or changes the safety state (cooldowns, the hourly budget, in-flight marks,
breakers, pending effectiveness checks) goes through one :class:`SafetyLedger`: the remediator's
decisions and outcomes, a person's breaker reset, the effectiveness verdicts, and the leader
elector's merge of the previous leader's summary. So no writer can overwrite another's change:
a merge during a poll goes into the poll's in-memory state and is saved with it.

During a poll (:meth:`SafetyLedger.poll`) the state is loaded once and kept in memory; a change
that must survive a crash before the cluster is called (an allowed action) is still written to
the store at once (``durable``), the rest at the poll's end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sentinel.core.policy import ActionRequest, Allow, Decision, PendingCheck, SafetyLimits, SafetyState, decide
from sentinel.store.base import Store

STATE_NAME = "safety"  # the store state the ledger persists


class SafetyLedger:
    """The safety state of one replica, in ``store`` under :data:`STATE_NAME`. Thread-safe."""

    def __init__(self, store: Store, *, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._poll_state: SafetyState | None = None  # loaded once while a poll runs
        self._dirty = False

    # -- reading --------------------------------------------------------------------------------

    def state(self) -> SafetyState:
        """A copy of the safety state (the poll's while a poll runs), pruned at now."""
        with self._lock:
            s = self._load()
            if s is self._poll_state:
                s = s.copy()
        s.prune(self._clock())
        return s

    # -- the decision ---------------------------------------------------------------------------

    def decide(
        self, request: ActionRequest, limits: SafetyLimits, *, leader: bool = True, holder: str = ""
    ) -> tuple[Decision, float]:
        """Decide ``request`` (pure :func:`decide`) and, when allowed, note it started; (decision, now).

        An allowed real action is on the store before this returns (a crash must not reset the
        budget); an alert (action ``none``) touches nothing outside, so its cooldown may wait.
        """
        with self._lock:
            now = self._clock()
            state = self._load()
            if state is not self._poll_state:
                state.prune(now)  # a poll's state is pruned once, when the poll starts
            decision = decide(request, state, limits, now, leader=leader, holder=holder)
            if isinstance(decision, Allow):
                state.note_started(request, now)
                self._save(state, durable=not decision.record_only)
        return decision, now

    def finish(self, request: ActionRequest, *, executed: PendingCheck | None = None) -> float:
        """The request is done: its target is free again; ``executed`` waits for its verdict. Returns now."""
        with self._lock:
            end = self._clock()
            state = self._load()
            state.note_finished(request, end)
            if executed is not None:
                state.note_executed(executed)
            self._save(state)
        return end

    # -- other changes --------------------------------------------------------------------------

    @contextmanager
    def edit(self) -> Iterator[SafetyState]:
        """Change the state in place under the lock; it is saved when the block ends without error."""
        with self._lock:
            state = self._load()
            yield state
            self._save(state)

    def halt(self, reason: str) -> None:
        """Open the remediator-wide breaker: nothing acts until a person resets it."""
        with self.edit() as state:
            state.halt(reason, now=self._clock())

    def reset_breaker(self, workload: str, *, by: str) -> bool:
        """A person closes ``workload``'s breaker; True if it was open."""
        with self.edit() as state:
            return state.reset_breaker(workload, by=by, now=self._clock())

    def apply(self, change: Callable[[SafetyState], int], *, flush: bool = False) -> int:
        """Run ``change`` on the state under the lock (it changes it in place and returns how many
        entries it changed); saved only when something changed, then flushed if ``flush``."""
        with self._lock:
            state = self._load()
            changed = change(state)
            if changed:
                self._save(state)
        if changed and flush:
            self._store.flush()
        return changed

    # -- one load and one save per poll ---------------------------------------------------------

    @contextmanager
    def poll(self) -> Iterator[None]:
        """One load and one save for all the decisions of a poll (nested calls join the outer one).

        Decisions inside are made against the in-memory state (every thread's, manual requests
        included, so none is lost). A refusal changes nothing; an alert only starts a cooldown,
        saved at the end. An allowed real action still saves the state before the call and after.
        """
        with self._lock:
            nested = self._poll_state is not None
            if not nested:
                state = SafetyState.from_dict(self._store.get_state(STATE_NAME))
                state.prune(self._clock())
                self._poll_state, self._dirty = state, False
        try:
            yield
        finally:
            if not nested:
                with self._lock:
                    kept, self._poll_state = self._poll_state, None
                    if self._dirty and kept is not None:
                        self._store.put_state(STATE_NAME, kept.to_dict())
                    self._dirty = False

    # -- persistence (callers hold the lock) ----------------------------------------------------

    def _load(self) -> SafetyState:
        if self._poll_state is not None:
            return self._poll_state
        return SafetyState.from_dict(self._store.get_state(STATE_NAME))

    def _save(self, state: SafetyState, *, durable: bool = True) -> None:
        if state is self._poll_state and not durable:
            self._dirty = True
            return
        self._store.put_state(STATE_NAME, state.to_dict())
        if state is self._poll_state:
            self._dirty = False
