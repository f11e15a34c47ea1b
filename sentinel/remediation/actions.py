"""The doers of the remediation actions, registered by name against the specs in ``sentinel.core.actions``.

An executor gets a :class:`Context` (the cluster, the resolved target, typed params, dry-run and
``now``) and returns what changed, for the audit record (``{"replicas": [2, 3]}``). It raises a
:class:`~sentinel.errors.ClusterError` when the API refuses, or :class:`NotApplicable` when there is
nothing to do (already at the bound, no stuck pod, no previous revision, wrong kind of target).

API calls per action (and the RBAC verbs they need, all listed in the spec's ``permissions``):

================= ======================================================================
restart-pod       GET pod; method evict (default): POST pods/eviction (policy/v1 Eviction,
                  uid precondition and grace in ``deleteOptions``); a 429 (a
                  PodDisruptionBudget forbids it) is refused and never retried as a delete.
                  method delete: DELETE pod (DeleteOptions body: uid precondition, grace).
                  A pod with no controller ownerReference is left alone (nothing would
                  recreate it)
rollout-restart   GET + PATCH (strategic merge) Deployment/StatefulSet/DaemonSet:
                  ``spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]``
scale-up/down     GET + PATCH (merge, resourceVersion precondition) deployments|statefulsets/scale
rollback          GET Deployment, LIST ReplicaSets (by selector), PATCH Deployment (merge patch
                  turning its template into the previous revision's, resourceVersion precondition)
delete-stuck-pods GET workload, LIST pods (by selector; a Job's by job-name), for a
                  Deployment LIST ReplicaSets (by selector); a pod is the workload's only
                  through owner uids (pod -> ReplicaSet -> Deployment, or pod -> workload),
                  never by name; DELETE pod grace 0 (uid precondition) per stuck pod
none              nothing
================= ======================================================================

Every write accepts ``dry_run``, sent where the API server reads it (``sentinel.remediation.cluster``);
read-modify-writes retry once on 409. In dry-run, each executor notes (:meth:`Context.watch`) every
object it is about to write, as it was just before; :func:`changed_by_dry_run` reads them back
afterwards (defence in depth: a dry run that changed anything halts the remediator).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sentinel.core.actions import (
    ACTIONS,
    DeleteStuckPodsParams,
    Params,
    RestartPodParams,
    RollbackParams,
    ScaleDownParams,
    ScaleUpParams,
    scale_target,
)
from sentinel.core.durations import format_duration
from sentinel.core.model import Target
from sentinel.errors import NotFound, SentinelError
from sentinel.remediation.cluster import (
    HASH_LABEL,
    RESTARTED_AT,
    REVISION,
    SCALABLE_KINDS,
    WORKLOAD_KINDS,
    Cluster,
    selector_string,
)

log = logging.getLogger(__name__)

Changes = dict[str, Any]
P = TypeVar("P", bound=Params)


class NotApplicable(SentinelError):
    """The action has nothing to do on this target; recorded as skipped with this reason."""


@dataclass(frozen=True, slots=True)
class Watched:
    """An object a dry run was about to write, with what could show that the write happened anyway."""

    kind: str
    namespace: str
    name: str
    before: dict[str, Any]


def fingerprint(obj: dict[str, Any]) -> dict[str, Any]:
    """What any of our writes would change: uid, resourceVersion, generation, replicas, deletion, and
    the rest of metadata and spec (so a resourceVersion moved by someone else's status update is told apart)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    rest = {k: v for k, v in meta.items() if k not in ("resourceVersion", "managedFields")}
    return {
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
        "generation": meta.get("generation"),
        "replicas": spec.get("replicas") if isinstance(spec, dict) else None,
        "deletionTimestamp": meta.get("deletionTimestamp"),
        "_rest": (rest, spec),
    }


@dataclass(frozen=True, slots=True)
class Context:
    cluster: Cluster
    target: Target  # the pod for pod actions, the workload otherwise
    params: Params
    dry_run: bool
    now: float
    watched: list[Watched] = field(default_factory=list)

    def watch(self, kind: str, name: str, obj: dict[str, Any] | None = None) -> None:
        """In dry-run, note ``kind``/``name`` (as ``obj`` shows it, else read now) before writing it."""
        if not self.dry_run:
            return
        if obj is None or obj.get("kind") not in (None, kind):
            obj = self.cluster.get_object(self.target.namespace, kind, name)
        self.watched.append(Watched(kind, self.target.namespace, name, fingerprint(obj)))

    def typed(self, cls: type[P]) -> P:
        if not isinstance(self.params, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(self.params).__name__}")
        return self.params

    @property
    def prefix(self) -> str:
        return f"[{self.target.namespace}/{self.target.name}]"


def changed_by_dry_run(ctx: Context) -> list[str]:
    """Read back every object the dry run watched; one line per change found (empty: nothing changed).

    uid, generation, replicas and deletionTimestamp must be as before, and the object must still
    exist. A moved resourceVersion counts too, unless nothing but ``status`` changed with it (the
    kubelet or a controller updating status is not one of our writes: none of them writes status).
    """
    found: list[str] = []
    for w in ctx.watched:
        where = f"{w.kind} {w.namespace}/{w.name}"
        try:
            after = fingerprint(ctx.cluster.get_object(w.namespace, w.kind, w.name))
        except NotFound:
            found.append(f"{where} is gone")
            continue
        diffs = [
            f"{key} {w.before[key]!r} -> {after[key]!r}"
            for key in ("uid", "generation", "replicas", "deletionTimestamp")
            if w.before[key] != after[key]
        ]
        if w.before["resourceVersion"] != after["resourceVersion"] and (diffs or w.before["_rest"] != after["_rest"]):
            diffs.insert(0, f"resourceVersion {w.before['resourceVersion']!r} -> {after['resourceVersion']!r}")
        if diffs:
            found.append(f"{where}: " + ", ".join(diffs))
    return found


Executor = Callable[[Context], Changes]
EXECUTORS: dict[str, Executor] = {}


def executor(name: str) -> Callable[[Executor], Executor]:
    """Register the doer of the action spec ``name``."""
    if name not in ACTIONS:
        raise ValueError(f"no action spec named {name!r}")

    def register(fn: Executor) -> Executor:
        if name in EXECUTORS:
            raise ValueError(f"executor for {name!r} registered twice")
        EXECUTORS[name] = fn
        return fn

    return register


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def merge_diff(current: Any, target: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``target``."""
    if not (isinstance(current, dict) and isinstance(target, dict)):
        return copy.deepcopy(target)
    out: dict[str, Any] = {k: None for k in current if k not in target}
    for k, v in target.items():
        if k not in current:
            out[k] = copy.deepcopy(v)
        elif current[k] != v:
            out[k] = (
                merge_diff(current[k], v) if isinstance(v, dict) and isinstance(current[k], dict) else copy.deepcopy(v)
            )
    return out


def _need(kind: str, allowed: tuple[str, ...], action: str) -> None:
    if kind not in allowed:
        raise NotApplicable(f"{action} needs a {' or '.join(allowed)}; the target is a {kind}")


@executor("none")
def _none(ctx: Context) -> Changes:
    return {}


@executor("restart-pod")
def restart_pod(ctx: Context) -> Changes:
    params = ctx.typed(RestartPodParams)
    t = ctx.target
    pod = ctx.cluster.get_pod(t.namespace, t.name)
    if _controller_uid(pod) is None:
        raise NotApplicable(
            f"restart-pod: pod {t.namespace}/{t.name} has no controller (no ownerReference with controller: true);"
            " no controller would recreate it, so it is not deleted"
        )
    uid = pod["metadata"].get("uid")
    ctx.watch("Pod", t.name, pod)
    dry = " (dry-run)" if ctx.dry_run else ""
    if params.method == "delete":
        out = ctx.cluster.delete_pod(
            t.namespace, t.name, grace_period=params.grace_period, uid=uid, dry_run=ctx.dry_run
        )
        meta = out.get("metadata") or {}
        log.info("%s pod %s deleted%s", ctx.prefix, t.name, dry)
        return {
            "pod": t.name,
            "method": "delete",
            "deleted": True,
            "grace_period": meta.get("deletionGracePeriodSeconds", params.grace_period),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        }
    # Evicted, or refused with DisruptionBudgetRefused (429): never retried as a plain delete.
    ctx.cluster.evict_pod(t.namespace, t.name, grace_period=params.grace_period, uid=uid, dry_run=ctx.dry_run)
    log.info("%s pod %s evicted%s", ctx.prefix, t.name, dry)
    return {"pod": t.name, "method": "evict", "evicted": True, "grace_period": params.grace_period}


@executor("rollout-restart")
def rollout_restart(ctx: Context) -> Changes:
    t = ctx.target
    _need(t.kind, WORKLOAD_KINDS, "rollout-restart")
    obj = ctx.cluster.get_object(t.namespace, t.kind, t.name)
    annotations = ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
    old = annotations.get(RESTARTED_AT)
    new = rfc3339(ctx.now)
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: new}}}}}
    ctx.watch(t.kind, t.name, obj)
    ctx.cluster.patch_workload(t.namespace, t.kind, t.name, patch, dry_run=ctx.dry_run)
    log.info("%s %s restarted at %s%s", ctx.prefix, t.kind, new, " (dry-run)" if ctx.dry_run else "")
    return {"restartedAt": [old, new]}


def _scale(ctx: Context, *, replicas: str, lower_bound: int | None, upper_bound: int | None, action: str) -> Changes:
    t = ctx.target
    _need(t.kind, SCALABLE_KINDS, action)

    def attempt() -> Changes:
        scale = ctx.cluster.get_scale(t.namespace, t.kind, t.name)
        current = int((scale.get("spec") or {}).get("replicas", 0))
        # scale-up never removes replicas, scale-down never adds any
        lower = current if lower_bound is None else min(current, lower_bound)
        upper = current if upper_bound is None else max(current, upper_bound)
        wanted = scale_target(current, replicas, lower=lower, upper=upper)
        if wanted == current:
            bound = f"max_replicas {upper_bound}" if upper_bound is not None else f"min_replicas {lower_bound}"
            raise NotApplicable(f"no change: {t.kind} {t.name} has {current} replicas ({bound})")
        ctx.watch(t.kind, t.name)
        ctx.cluster.patch_scale(
            t.namespace,
            t.kind,
            t.name,
            wanted,
            resource_version=(scale.get("metadata") or {}).get("resourceVersion"),
            dry_run=ctx.dry_run,
        )
        log.info("%s %s scaled %d -> %d%s", ctx.prefix, t.kind, current, wanted, " (dry-run)" if ctx.dry_run else "")
        return {"replicas": [current, wanted]}

    return ctx.cluster.retry_on_conflict(attempt, what=f"{t.kind} {t.namespace}/{t.name} scale")


@executor("scale-up")
def scale_up(ctx: Context) -> Changes:
    p = ctx.typed(ScaleUpParams)
    return _scale(ctx, replicas=p.replicas, lower_bound=None, upper_bound=p.max_replicas, action="scale-up")


@executor("scale-down")
def scale_down(ctx: Context) -> Changes:
    p = ctx.typed(ScaleDownParams)
    return _scale(ctx, replicas=p.replicas, lower_bound=p.min_replicas, upper_bound=None, action="scale-down")


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int((obj.get("metadata", {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


@executor("rollback")
def rollback(ctx: Context) -> Changes:
    """``kubectl rollout undo``: the Deployment gets the template of its previous (or a given) revision."""
    p = ctx.typed(RollbackParams)
    t = ctx.target
    _need(t.kind, ("Deployment",), "rollback")

    def attempt() -> Changes:
        dep = ctx.cluster.get_object(t.namespace, "Deployment", t.name)
        uid = dep["metadata"].get("uid")
        selector = selector_string((dep.get("spec") or {}).get("selector"))
        owned = [
            rs
            for rs in ctx.cluster.list_replicasets(t.namespace, label_selector=selector)
            if any(r.get("uid") == uid and r.get("controller") for r in rs["metadata"].get("ownerReferences") or [])
        ]
        current = _revision(dep) or max((_revision(rs) for rs in owned), default=0)
        if p.to_revision:
            candidates = [rs for rs in owned if _revision(rs) == p.to_revision]
        else:
            candidates = sorted((rs for rs in owned if 0 < _revision(rs) < current), key=_revision)[-1:]
        if not candidates:
            wanted = f"revision {p.to_revision}" if p.to_revision else "a previous revision"
            raise NotApplicable(f"rollback: Deployment {t.name} (revision {current}) has no ReplicaSet for {wanted}")
        rs = candidates[-1]
        template = _without_hash(rs["spec"]["template"])
        if template == dep["spec"]["template"]:
            raise NotApplicable(f"rollback: Deployment {t.name} already runs the template of revision {_revision(rs)}")
        patch = {
            "metadata": {"resourceVersion": dep["metadata"].get("resourceVersion")},
            "spec": {"template": merge_diff(dep["spec"]["template"], template)},
        }
        ctx.watch("Deployment", t.name, dep)
        ctx.cluster.patch_workload(t.namespace, "Deployment", t.name, patch, dry_run=ctx.dry_run, merge=True)
        log.info(
            "%s rolled back from revision %d to %d (%s)%s",
            ctx.prefix,
            current,
            _revision(rs),
            rs["metadata"]["name"],
            " (dry-run)" if ctx.dry_run else "",
        )
        return {"revision": [current, _revision(rs)], "replicaset": rs["metadata"]["name"]}

    return ctx.cluster.retry_on_conflict(attempt, what=f"Deployment {t.namespace}/{t.name} rollback")


def _controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid of ``obj``'s controller (its ownerReference with ``controller: true``), if it has one."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "") or None
    return None


def _owner_uids(ctx: Context, workload: dict[str, Any]) -> set[str]:
    """The uids a pod's controller must have for the pod to belong to ``workload`` (the target).

    A Deployment's pods are controlled by its ReplicaSets: those whose controller is the
    Deployment (by uid; listed by the Deployment's selector, as its controller finds them).
    Every other workload controls its pods itself. Names are never compared: Deployment ``web``
    must not reach the pods of ``web-canary``.
    """
    uid = str((workload.get("metadata") or {}).get("uid") or "")
    if not uid:
        return set()
    if ctx.target.kind != "Deployment":
        return {uid}
    selector = selector_string((workload.get("spec") or {}).get("selector"))
    return {
        str(rs["metadata"]["uid"])
        for rs in ctx.cluster.list_replicasets(ctx.target.namespace, label_selector=selector)
        if rs["metadata"].get("uid") and _controller_uid(rs) == uid
    }


def stuck_for(pod: dict[str, Any], now: float) -> float | None:
    """Seconds a pod has been Terminating, once it is past its own grace deadline; None otherwise."""
    meta = pod.get("metadata") or {}
    deadline_text = meta.get("deletionTimestamp")
    if not deadline_text:
        return None
    deadline = parse_rfc3339(deadline_text)
    if now < deadline:
        return None
    return now - (deadline - float(meta.get("deletionGracePeriodSeconds") or 0))


@executor("delete-stuck-pods")
def delete_stuck_pods(ctx: Context) -> Changes:
    p = ctx.typed(DeleteStuckPodsParams)
    t = ctx.target
    _need(t.kind, (*WORKLOAD_KINDS, "ReplicaSet", "Job", "Pod"), "delete-stuck-pods")
    if t.kind == "Pod":
        pods = [ctx.cluster.get_pod(t.namespace, t.name)]
        owners: set[str] | None = None  # the pod itself was asked for
    else:
        obj = ctx.cluster.get_object(t.namespace, t.kind, t.name)
        if t.kind == "Job":  # the Job controller labels its pods with the Job's name
            selector = f"job-name={t.name}"
        else:
            selector = selector_string((obj.get("spec") or {}).get("selector"))
        pods = ctx.cluster.list_pods(t.namespace, label_selector=selector)
        owners = _owner_uids(ctx, obj)
    stuck = {}
    pods_by_name = {p["metadata"]["name"]: p for p in pods}
    for pod in pods:
        if owners is not None and _controller_uid(pod) not in owners:
            continue
        age = stuck_for(pod, ctx.now)
        if age is not None and age > p.older_than:
            stuck[pod["metadata"]["name"]] = (pod["metadata"].get("uid"), age)
    if not stuck:
        raise NotApplicable(f"no pod of {t.kind} {t.name} Terminating longer than {format_duration(p.older_than)}")
    deleted: list[str] = []
    for name, (uid, age) in sorted(stuck.items()):
        try:
            ctx.watch("Pod", name, pods_by_name.get(name))
            ctx.cluster.delete_pod(t.namespace, name, grace_period=0, uid=uid, dry_run=ctx.dry_run)
        except NotFound:
            log.info("%s stuck pod %s is already gone", ctx.prefix, name)
            continue
        log.info(
            "%s force-deleted pod %s, Terminating for %s%s",
            ctx.prefix,
            name,
            format_duration(age),
            " (dry-run)" if ctx.dry_run else "",
        )
        deleted.append(name)
    return {"deleted": deleted, "terminating_for": {n: round(a) for n, (_, a) in stuck.items()}}
