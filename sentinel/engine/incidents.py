"""incidents: what issue 16 adds to the engine, behind the few calls the runtime makes.

- deploy correlation (:mod:`sentinel.engine.rollouts`): per group, the revision and images current
  when it was first seen, and whether it is new since the rollout; the ``new_since_rollout`` gate
  of rollback rules;
- pod status as a second source (:mod:`sentinel.engine.podstatus`): pod states become occurrences
  through the same pipeline, each counted once; ``source`` per group.

The runtime calls :meth:`Incidents.feed` in the poll before the batch is settled,
:meth:`Incidents.recorded` after the store recorded it, :meth:`Incidents.gate` before a rule's
remediation, and :meth:`Incidents.stop` at the end. None of them calls the cluster.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sentinel.config import Config
from sentinel.core.model import ErrorGroup
from sentinel.core.rules import Rule
from sentinel.engine.pipeline import Batch, Pipeline
from sentinel.engine.podstatus import PodStatusWatcher
from sentinel.engine.rollouts import RolloutReads, RolloutTracker
from sentinel.sources.podstatus import PodPages, PodStatusSource
from sentinel.store.base import GroupChange, Store

log = logging.getLogger(__name__)


class Incidents:
    def __init__(self, *, rollouts: RolloutTracker, pods: PodStatusWatcher) -> None:
        self.rollouts = rollouts
        self.pods = pods
        self._fed: tuple[list[str], Counter[str]] | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        cluster: Any,
        *,
        store: Store,
        clock: Callable[[], float] = time.time,
        no_cluster: str = "no cluster configured",
        background: bool = True,
    ) -> Incidents:
        """From ``kubernetes:`` (``rollout_window``, ``pod_status``); ``cluster`` None: both stay idle."""
        k = config.kubernetes
        reads: RolloutReads | None = cluster
        rollouts = RolloutTracker(reads, store=store, clock=clock, window=k.rollout_window, no_cluster=no_cluster)
        source = None
        if cluster is not None and k.pod_status.enabled:
            pages: PodPages = cluster
            source = PodStatusSource(
                pages, namespaces=tuple(k.pod_status.namespaces), page_limit=k.pod_status.page_limit
            )
        pods = PodStatusWatcher(source, store=store, clock=clock, interval=k.pod_status.interval, background=background)
        return cls(rollouts=rollouts, pods=pods)

    @classmethod
    def idle(cls, *, store: Store, clock: Callable[[], float] = time.time) -> Incidents:
        return cls(
            rollouts=RolloutTracker(None, store=store, clock=clock),
            pods=PodStatusWatcher(None, store=store, clock=clock),
        )

    # -- the poll ------------------------------------------------------------------------------

    def feed(self, pipeline: Pipeline, batch: Batch) -> int:
        """Pod states not counted yet go into ``batch`` like log lines; returns how many."""
        self.pods.start()
        entries = self.pods.entries()
        self._fed = None
        if not entries:
            return 0
        pipeline.process([e for _, e in entries], into=batch)
        groups = Counter(pipeline.explain(e, learn=False).group for _, e in entries)
        self._fed = ([k for k, _ in entries], groups)
        return len(entries)

    def recorded(self, changes: Iterable[GroupChange]) -> None:
        """The store holds the poll's counts: the fed states are counted for good; new groups get correlated."""
        changes = list(changes)
        if self._fed is not None:
            keys, groups = self._fed
            self._fed = None
            self.pods.commit(keys, groups)
        self.rollouts.observe(changes)

    def gate(self, rule: Rule, g: ErrorGroup, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(why the rule's ``remediation.when`` says no, "" if it does not; the params to act with)."""
        if rule.when != "new_since_rollout":
            return "", dict(params)
        return self.rollouts.gate(g, params)

    # -- reads -------------------------------------------------------------------------------------

    def source_of(self, g: ErrorGroup) -> str:
        return self.pods.source_of(g)

    def rollout_of(self, g: ErrorGroup, *, wait: float = 0.0) -> dict[str, Any]:
        return self.rollouts.correlation(g, wait=wait)

    def is_new_since_rollout(self, g: ErrorGroup) -> bool:
        return self.rollouts.is_new_since_rollout(g)

    def stop(self) -> None:
        self.rollouts.stop()
        self.pods.stop()
