"""The remediation service: decide (pure policy, through the safety ledger), act, audit.

One :meth:`Remediator.handle` per would-be action::

    ledger (one lock): load SafetyState -> decide -> (allowed) note_started -> put_state("safety")
    audit record added ("in progress") -> store.flush()   # on disk before any call to the cluster
    resolve target -> executor (dry-run or real) -> record updated
    ledger: note_finished (+ effectiveness check queued) -> put_state("safety")

The safety state has one owner, :class:`~sentinel.remediation.ledger.SafetyLedger`; its lock makes
decide + note_started atomic, so two polls racing for one workload cannot both
act: the second sees the first in flight (or its cooldown). Persisting *and flushing* before
acting means a crash mid-action still leaves the cooldown and the spent budget behind on disk
(a file store's ``put_state`` only changes memory until the next flush); when that flush fails,
nothing is done. Action ``none`` (record only) makes no cluster call, so it needs no flush.
With leader election, ``leader`` says whether this replica leads: a follower's request is refused
by :func:`~sentinel.core.policy.decide` itself and audited like any refusal; ``before_act`` then writes the new safety state into the Lease, so the next
leader knows of the action before it happens; if that write shows leadership is gone, no action.

``restart-pod`` acts on the pod of the group's newest occurrence (:func:`pod_of`).

Defence in depth for dry-run: after a dry-run action the remediator reads back every object the
action was about to write (:func:`~sentinel.remediation.actions.changed_by_dry_run`). If any of
them changed, the record fails with what changed and the remediator-wide breaker
(:data:`~sentinel.core.policy.REMEDIATOR`) opens: no action runs until a person resets it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from sentinel.core.actions import ACTIONS, ActionSpec, validate_params
from sentinel.core.model import ErrorGroup, RemediationRecord, Result, Target
from sentinel.core.policy import (
    REMEDIATOR,
    ActionRequest,
    Deny,
    DenyCode,
    PendingCheck,
    SafetyLimits,
    SafetyState,
    is_effective,
    verdict_due,
    window_counts,
    workload_key,
)
from sentinel.errors import ClusterError, DisruptionBudgetRefused, NotFound, StoreError, cap
from sentinel.remediation.actions import EXECUTORS, Context, NotApplicable, changed_by_dry_run
from sentinel.remediation.cluster import WORKLOAD_KINDS, Cluster
from sentinel.remediation.ledger import STATE_NAME, SafetyLedger
from sentinel.store.base import MAX_PAGE_SIZE, RecordQuery, Store

log = logging.getLogger(__name__)

__all__ = ["STATE_NAME", "LeadershipLost", "Remediator", "pod_of"]

ALERT_SUMMARY_GROUPS = 1000  # group ids listed in one over-the-cap summary record
NO_CLUSTER = "no cluster configured (no kubeconfig and no in-cluster service account)"


def pod_of(group: ErrorGroup) -> str:
    """The pod a pod-level action targets: the one of the newest occurrence, else the last one listed."""
    return group.last_pod or (group.pods[-1] if group.pods else "")


class LeadershipLost(Exception):
    """Leadership ended between the decision and the cluster call: the action is not taken."""


class Remediator:
    """Runs remediation actions under :class:`SafetyLimits` and writes every attempt to the audit."""

    def __init__(
        self,
        *,
        store: Store,
        cluster: Cluster | None,
        limits: SafetyLimits,
        clock: Callable[[], float],
        ledger: SafetyLedger | None = None,
    ) -> None:
        self._store = store
        self._cluster = cluster
        self._limits = limits
        self._clock = clock
        self.ledger = ledger or SafetyLedger(store, clock=clock)
        self._lock = threading.Lock()  # the limits and the audit folding below (the ledger has its own)
        # The last record per (rule, workload): a refusal that repeats it is folded into it.
        self._last: dict[tuple[str, str], RemediationRecord] = {}
        # Whether this replica leads, and who does: with leader election, a follower acts on nothing.
        self.leader: Callable[[], tuple[bool, str]] = lambda: (True, "")
        # Called after the safety state is on disk and before a real cluster call; False = do not
        # act. With leader election, it publishes the new cooldown in the Lease (so a takeover
        # cannot repeat this action) and confirms this replica still leads.
        self.before_act: Callable[[], bool] | None = None

    # -- settings and display -----------------------------------------------------------------

    @property
    def limits(self) -> SafetyLimits:
        return self._limits

    @property
    def cluster(self) -> Cluster | None:
        return self._cluster

    def set_limits(self, limits: SafetyLimits) -> None:
        """Live settings change: the next decision uses ``limits``."""
        with self._lock:
            self._limits = limits
        log.info("remediation limits changed: %s", limits)

    def state(self) -> SafetyState:
        """A copy of the safety state (the poll's while a poll runs), pruned at now."""
        return self.ledger.state()

    def summary(self) -> dict[str, Any]:
        """What the console shows: limits, budget, cooldowns, breakers, and whether a cluster is there."""
        now = self._clock()
        out = self.state().summary(now, self._limits)
        out["cluster"] = self._cluster.host if self._cluster is not None else None
        out["cluster_note"] = "" if self._cluster is not None else f"dry-run without a cluster: {NO_CLUSTER}"
        return out

    def reset_breaker(self, workload: str, by: str) -> bool:
        """A person closes ``workload``'s breaker ("namespace/name"); True if it was open."""
        was_open = self.ledger.reset_breaker(workload, by=by)
        log.info("[%s] breaker reset by %s (was %s)", workload, by, "open" if was_open else "closed")
        return was_open

    def poll(self) -> AbstractContextManager[None]:
        """One safety-state load and one save for all the decisions of a poll (:meth:`SafetyLedger.poll`)."""
        return self.ledger.poll()

    # -- the one entry point -------------------------------------------------------------------

    def handle(
        self,
        group: ErrorGroup,
        *,
        rule: str,
        action: str,
        params: Mapping[str, Any] | None,
        cooldown: float,
        requested_by: str = "engine",
        manual: bool = False,
        refused: str = "",
    ) -> RemediationRecord:
        """Decide, act (or dry-run, or refuse) and audit one action for ``group``; never raises for the cluster.

        ``refused``: why a condition of the rule (``remediation.when``) says no: a ``decide()`` refusal.
        """
        started = self._clock()
        key = workload_key(group.namespace, group.workload)
        spec = ACTIONS.get(action)
        pod = pod_of(group)
        kind, name = ("Pod", pod) if spec is not None and spec.target == "pod" else ("", group.workload)
        record = RemediationRecord(
            id=uuid.uuid4().hex,
            time=started,
            group_id=group.id,
            rule=rule,
            action=action,
            namespace=group.namespace,
            kind=kind,
            name=name,
            params=dict(params or {}),
            requested_by=requested_by,
            workload=key,
        )
        prefix = f"[{key}]"
        try:
            typed = validate_params(action, params)
        except ValueError as err:
            record.decision, record.result, record.error = "denied", Result.FAILED, cap(err, 512)
            record.reason = "invalid action or params"
            record.reason_code = "invalid-params"
            record = self._append(record)
            log.warning("%s %s refused: %s", prefix, action, err)
            return record
        assert spec is not None
        request = ActionRequest(
            group_id=group.id,
            rule=rule,
            action=action,
            namespace=group.namespace,
            workload=key,
            kind=kind,
            name=name,
            params=dict(params or {}),
            cooldown=cooldown,
            requested_by=requested_by,
            manual=manual,
            refused_by_rule=cap(refused, 512) if refused else "",
        )

        leading, holder = self.leader()
        decision, now = self.ledger.decide(request, self._limits, leader=leading, holder=holder)

        if isinstance(decision, Deny):
            record.decision, record.reason, record.result = "denied", decision.reason, Result.SKIPPED
            record.reason_code = decision.code.value
            record = self._append(record)
            if decision.code is DenyCode.FOLLOWER:
                log.info("%s %s asked by %s refused: this replica is a follower", prefix, action, requested_by)
            log.debug("%s %s for rule %s denied: %s", prefix, action, rule, decision.reason)
            return record

        record.reason = decision.reason
        if decision.record_only:
            record.result = Result.SKIPPED
            self._append(record)
            log.debug("%s rule %s: record only", prefix, rule)
            return record

        dry_run = decision.dry_run or self._cluster is None
        record.dry_run = dry_run
        record.reason = "in progress"
        self._append(record)
        executed = False
        ctx: Context | None = None
        try:
            if self._cluster is None:
                record.result = Result.SKIPPED
                record.reason = f"dry-run: {NO_CLUSTER}"
                record.changes = {"would": f"{action} {group.namespace}/{name or group.workload}"}
            else:
                # The safety state (cooldown, budget, in-flight mark) must be on disk before the
                # cluster changes: a crash right after the call must not let a restart repeat it.
                self._store.flush()
                if not dry_run and self.before_act is not None and not self.before_act():
                    raise LeadershipLost(
                        "not done: the lease could not carry this action's cooldown, or this replica no longer leads"
                    )
                target = self._target(self._cluster, spec, group)
                record.kind, record.name = target.kind, target.name
                ctx = Context(self._cluster, target, typed, dry_run, now)
                record.changes = EXECUTORS[action](ctx)
                record.reached_cluster = True  # the write (or its dry run) was accepted
                record.result = Result.SUCCESS
                record.reason = "executed"
                executed = not dry_run
                if dry_run:
                    self._verify_dry_run(ctx, record, prefix)
        except LeadershipLost as err:
            log.warning("%s %s %s", prefix, action, err)
            record.result, record.reason = Result.SKIPPED, str(err)
        except StoreError as err:
            log.error("%s %s not done: the safety state could not be saved: %s", prefix, action, err)
            record.result, record.error = Result.FAILED, cap(err, 512)
            record.reason = "not done: the safety state could not be saved before acting"
        except NotApplicable as err:
            record.result, record.reason = Result.SKIPPED, str(err)
        except DisruptionBudgetRefused as err:
            # The API server refused the eviction: a budget forbids it now. Audited as such; never retried as a delete.
            record.result, record.error = Result.SKIPPED, str(err)
            record.reached_cluster = True  # the eviction was sent, and refused
            record.reason = (
                "refused by a PodDisruptionBudget: the eviction would break it (429); not retried as a delete"
            )
        except NotFound as err:
            if spec.target == "pod":
                record.result, record.reason = (
                    Result.SKIPPED,
                    f"target gone: pod {group.namespace}/{name} no longer exists",
                )
            else:
                record.result, record.reason, record.error = Result.FAILED, "the API server said not found", str(err)
        except ClusterError as err:
            record.result, record.error = Result.FAILED, str(err)
            record.reason = f"the API call failed ({type(err).__name__})"
            record.reached_cluster = ctx is not None  # the action itself (not the target's resolution) failed
            if ctx is not None and ctx.dry_run and ctx.watched:  # a dry run that failed halfway: read back too
                try:
                    self._verify_dry_run(ctx, record, prefix, after_error=str(err))
                except ClusterError as again:
                    log.warning("%s could not read back after the failed dry run: %s", prefix, again)
        except Exception as err:  # a bug must not stop the engine; it is logged with its traceback
            log.exception("%s %s crashed", prefix, action)
            record.result, record.error = Result.FAILED, cap(f"{type(err).__name__}: {err}")
            record.reason = "internal error"
        finally:
            check = PendingCheck(record.id, group.id, key, action, now) if executed else None
            end = self.ledger.finish(request, executed=check)
            record.duration_ms = round((end - started) * 1000, 3)
            self._store.update_remediation(record)
        log.log(
            logging.INFO if record.reached_cluster else logging.DEBUG,
            "%s %s on %s/%s: %s%s%s",
            prefix,
            action,
            record.kind,
            record.name,
            record.result.value,
            " (dry-run)" if record.dry_run else "",
            f": {record.error or record.reason}" if record.result is not Result.SUCCESS else "",
        )
        return record

    def alert_summary(self, groups: list[ErrorGroup], *, cap: int) -> RemediationRecord:
        """One audit record for the alert-only groups of a poll past its cap of ``cap`` records."""
        now = self._clock()
        shown = groups[:ALERT_SUMMARY_GROUPS]
        record = RemediationRecord(
            id=uuid.uuid4().hex,
            time=now,
            group_id="",
            rule=",".join(sorted({g.rule for g in groups}))[:200],
            action="none",
            namespace="",
            kind="",
            name="",
            reason=f"alert only: {len(groups)} more new groups this poll, past the cap of {cap} records per poll",
            reason_code="alerts-over-cap",
            result=Result.SKIPPED,
            changes={
                "count": len(groups),
                "groups": [g.id for g in shown],
                "more": len(groups) - len(shown),
            },
        )
        self._store.add_remediation(record)
        log.info("%d alert-only records past the cap of %d this poll: one summary record", len(groups), cap)
        return record

    def _append(self, record: RemediationRecord) -> RemediationRecord:
        """Add ``record`` to the audit, or fold it into the previous record for its (rule, workload).

        A refusal folds when the previous record for the same rule and workload is that same
        refusal (decision and reason code): the old record's ``count`` and ``last_time`` grow
        instead of the log. Anything else starts a new record. Returns the record that was written.
        """
        key = (record.rule, record.workload)
        with self._lock:
            prev = self._last.get(key)
            if (
                record.decision == "denied"
                and prev is not None
                and prev.decision == "denied"
                and prev.reason_code == record.reason_code
                and prev.action == record.action
            ):
                prev.count += 1
                prev.last_time = record.time
                prev.reason = record.reason  # the newest wording (a cooldown's remaining time)
                self._store.update_remediation(prev)
                return prev
            self._last[key] = record
            self._store.add_remediation(record)
            return record

    def _verify_dry_run(self, ctx: Context, record: RemediationRecord, prefix: str, *, after_error: str = "") -> None:
        """Read back what the dry run was about to write; if anything changed, fail and halt the remediator."""
        changed = changed_by_dry_run(ctx)
        if not changed:
            if not after_error:
                record.reason = "dry-run: the API server accepted it; read back, nothing changed"
            return
        what = "; ".join(changed)
        record.result = Result.FAILED
        record.reason = "dry-run changed the cluster: remediator halted"
        record.error = cap(
            f"read back after the dry run: {what}" + (f"; then: {after_error}" if after_error else ""), 1024
        )
        record.changes = {**record.changes, "changed_by_dry_run": changed}
        reason = f"a dry run of {record.action} (record {record.id}) changed the cluster: {cap(what, 512)}"
        self.ledger.halt(reason)
        log.error("%s %s; every action is refused until a person resets breaker %r", prefix, reason, REMEDIATOR)

    def _target(self, cluster: Cluster, spec: ActionSpec, group: ErrorGroup) -> Target:
        pod = pod_of(group) or None
        if spec.target == "pod":
            if not pod:
                raise NotApplicable(f"{spec.name}: no pod is known for group {group.id}")
            return Target(group.namespace, "Pod", pod)
        return cluster.resolve(
            group.namespace, pod=pod, workload_hint=group.workload, kinds=spec.kinds or WORKLOAD_KINDS
        )

    # -- effectiveness ------------------------------------------------------------------------

    def evaluate_effectiveness(
        self, groups_by_id: Callable[[str], ErrorGroup | None], now: float
    ) -> list[RemediationRecord]:
        """Judge executed actions whose window has passed; open breakers after K ineffective ones."""
        window = self._limits.effectiveness_window
        threshold = self._limits.breaker_threshold
        updated: list[RemediationRecord] = []

        def judge(state: SafetyState) -> int:
            due = [c for c in state.pending.values() if verdict_due(c.time, window, now)]
            for check in due:
                group = groups_by_id(check.group_id)
                if group is None:
                    effective = True  # the error is no longer tracked at all
                    before = after = 0
                elif group.minute_counts:
                    before, after = window_counts(group.minute_counts, check.time, window)
                    effective = is_effective(before, after)
                else:
                    before, after = 0, int(group.last_seen > check.time)
                    effective = group.last_seen <= check.time
                opened = state.note_verdict(check, effective=effective, now=now, threshold=threshold)
                record = self._find_record(check)
                if record is not None:
                    record.effective = effective
                    record.changes = {**record.changes, "errors_before": before, "errors_after": after}
                    self._store.update_remediation(record)
                    updated.append(record)
                log.info(
                    "[%s] %s was %s (%d errors before, %d after)",
                    check.workload,
                    check.action,
                    "effective" if effective else "ineffective",
                    before,
                    after,
                )
                if opened:
                    log.warning("[%s] breaker opened: %s", check.workload, state.breakers[check.workload].reason)
            return len(due)

        self.ledger.apply(judge)
        return updated

    def _find_record(self, check: PendingCheck) -> RemediationRecord | None:
        page = 1
        while True:
            result = self._store.list_remediations(
                RecordQuery(group_id=check.group_id, page=page, page_size=MAX_PAGE_SIZE)
            )
            for r in result.items:
                if r.id == check.record_id:
                    return r
            if page >= result.pages:
                return None
            page += 1
