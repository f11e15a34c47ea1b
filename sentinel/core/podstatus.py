"""Pod states as occurrences, pure: what a pod's status says that its logs often never do.

From one pod object (as listed by the API server):

- ``CrashLoopBackOff``: ``containerStatuses[].state.waiting.reason``; one per restart (``restartCount``);
- ``OOMKilled``: ``state.terminated`` or ``lastState.terminated`` with that reason; one per
  terminated container instance (``containerID``, else ``finishedAt``);
- ``ImagePullBackOff`` / ``ErrImagePull``: ``state.waiting.reason``; one per reason and restart;
- ``Unschedulable``: the ``PodScheduled`` condition ``False`` with reason ``Unschedulable``; one per
  ``lastTransitionTime``;
- ``Evicted``: ``status.reason``; once per pod.

Each state has a ``key`` naming exactly that state change (pod uid, container, reason and the
instance); the engine counts a key once, and remembers the keys it counted across restarts.
Init containers count as containers. Each state becomes one log line (JSON, level error) so that
the same parse / fingerprint / rule / priority pipeline groups it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentinel.core.rollouts import ts_of

REASONS = ("CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", "ErrImagePull", "Unschedulable", "Evicted")
SOURCE_LABEL = "kubernetes-pod-status"  # the ``source`` label of these entries
MAX_DETAIL = 300

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PodState:
    """One state change of one pod (or one of its containers)."""

    key: str
    reason: str
    namespace: str
    pod: str
    uid: str
    container: str
    at: float | None  # when it happened, when the status says
    detail: str = ""

    @property
    def message(self) -> str:
        c = self.container
        if self.reason == "CrashLoopBackOff":
            return f"CrashLoopBackOff: back-off restarting failed container {c}"
        if self.reason == "OOMKilled":
            return f"OOMKilled: container {c} was killed for using more memory than its limit"
        if self.reason in ("ImagePullBackOff", "ErrImagePull"):
            return f"{self.reason}: container {c} cannot pull its image {self.detail}".rstrip()
        if self.reason == "Unschedulable":
            return f"Unschedulable: pod cannot be scheduled: {self.detail}".rstrip(": ")
        return f"Evicted: {self.detail}".rstrip(": ")

    @property
    def line(self) -> str:
        return json.dumps({"level": "error", "msg": self.message, "reason": self.reason}, separators=(",", ":"))

    @property
    def labels(self) -> dict[str, str]:
        out = {"namespace": self.namespace, "pod": self.pod, "source": SOURCE_LABEL}
        if self.container:
            out["container"] = self.container
        return out


def _cut(text: object) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= MAX_DETAIL else s[: MAX_DETAIL - 1] + "…"


def pod_states(pod: Mapping[str, Any]) -> list[PodState]:
    """Every counted state the pod is in (or, for terminations, last went through)."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ns, name, uid = (
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        str(meta.get("uid") or meta.get("name", "")),
    )
    out: list[PodState] = []

    def add(reason: str, container: str, instance: object, at: float | None, detail: str = "") -> None:
        key = f"{uid}/{container}/{reason}/{instance}"
        out.append(PodState(key, reason, ns, name, uid, container, at, _cut(detail)))

    images = {c.get("name"): c.get("image", "") for c in ((pod.get("spec") or {}).get("containers") or [])}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for cs in statuses:
        cname = str(cs.get("name", ""))
        restarts = int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        last_term = (cs.get("lastState") or {}).get("terminated") or {}
        reason = waiting.get("reason")
        if reason == "CrashLoopBackOff":
            add(reason, cname, restarts, ts_of(last_term.get("finishedAt")))
        elif reason in ("ImagePullBackOff", "ErrImagePull"):
            add(reason, cname, restarts, None, str(cs.get("image") or images.get(cname) or ""))
        for term in (state.get("terminated") or {}, last_term):
            if term.get("reason") == "OOMKilled":
                instance = term.get("containerID") or term.get("finishedAt") or restarts
                add("OOMKilled", cname, instance, ts_of(term.get("finishedAt")))
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            at = ts_of(cond.get("lastTransitionTime"))
            add("Unschedulable", "", cond.get("lastTransitionTime") or "", at, str(cond.get("message", "")))
    if status.get("reason") == "Evicted":
        add("Evicted", "", "", None, str(status.get("message", "")))
    return list({s.key: s for s in out}.values())  # the same instance seen twice counts once
