"""Deploy correlation, pure: a workload's revisions, the one a group was born in, and "new since the rollout".

A Deployment's revisions are its ReplicaSets (annotation ``deployment.kubernetes.io/revision``;
a rollback reuses the old ReplicaSet, gives it the next number and lists the old numbers in
``deployment.kubernetes.io/revision-history``). A StatefulSet's are its ControllerRevisions
(field ``revision``; ``status.updateRevision`` names the current one). A revision is identified
by its pod template: the ReplicaSet's ``pod-template-hash`` label, which is also the middle part
of its pods' names, or the ControllerRevision's name.

When a revision became current:

- a ReplicaSet without ``revision-history`` was created by that rollout: its ``creationTimestamp``;
- a reused one (a rollback): the Deployment's ``Progressing`` condition naming it, ``lastUpdateTime``
  (the closest the API keeps; it moves on with the rollout's progress, so it may be later);
- a ControllerRevision: its ``creationTimestamp``.

Everything here takes the objects as read (plain dicts) and returns values; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"
WHEN_VALUES = ("always", "new_since_rollout")
DEFAULT_WINDOW = 3600.0  # a group born within this long after its revision's rollout is "new since" it

Obj = dict[str, Any]


def ts_of(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class Revision:
    """One revision of a workload: its number, pod template id, images and when it became current."""

    number: int
    name: str  # the ReplicaSet or ControllerRevision
    hash: str  # pod-template-hash, or the ControllerRevision's name
    images: tuple[str, ...]
    rollout_at: float | None
    reused: bool = False  # a rollback brought this template back

    def to_dict(self) -> Obj:
        return {
            "revision": self.number,
            "name": self.name,
            "hash": self.hash,
            "images": list(self.images),
            "rollout_at": self.rollout_at,
            "reused": self.reused,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Revision:
        at = d.get("rollout_at")
        return cls(
            number=int(d.get("revision", 0)),
            name=str(d.get("name", "")),
            hash=str(d.get("hash", "")),
            images=tuple(str(i) for i in d.get("images") or ()),
            rollout_at=float(at) if isinstance(at, int | float) else None,
            reused=bool(d.get("reused", False)),
        )


@dataclass(frozen=True, slots=True)
class History:
    """A workload's revisions as read at ``read_at``; ``current`` is the number of the one running."""

    kind: str
    namespace: str
    name: str
    current: int
    revisions: tuple[Revision, ...]
    read_at: float

    def revision(self, number: int) -> Revision | None:
        return next((r for r in self.revisions if r.number == number), None)

    @property
    def current_revision(self) -> Revision | None:
        return self.revision(self.current)

    def by_hash(self, h: str) -> Revision | None:
        return next((r for r in self.revisions if r.hash == h), None)

    def previous(self) -> Revision | None:
        """What ``kubectl rollout undo`` (and the rollback action) goes back to: the highest number below current."""
        older = [r for r in self.revisions if 0 < r.number < self.current]
        return max(older, key=lambda r: r.number) if older else None

    def to_dict(self) -> Obj:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "current": self.current,
            "revisions": [r.to_dict() for r in self.revisions],
            "read_at": self.read_at,
        }


def _images(template: Mapping[str, Any] | None) -> tuple[str, ...]:
    spec = (template or {}).get("spec") or {}
    return tuple(str(c.get("image", "")) for c in spec.get("containers") or [] if c.get("image"))


def deployment_history(deployment: Obj, replicasets: Iterable[Obj], *, now: float) -> History:
    """The revisions of ``deployment`` from the ReplicaSets it controls (ownerReferences uid, else all given)."""
    meta = deployment.get("metadata") or {}
    uid = meta.get("uid")
    progressing: Obj = next(
        (c for c in (deployment.get("status") or {}).get("conditions") or [] if c.get("type") == "Progressing"),
        {},
    )
    revisions: list[Revision] = []
    for rs in replicasets:
        rmeta = rs.get("metadata") or {}
        refs = rmeta.get("ownerReferences") or []
        if uid and refs and not any(r.get("uid") == uid for r in refs):
            continue
        ann = rmeta.get("annotations") or {}
        number = _int(ann.get(REVISION, "0"))
        if number <= 0:
            continue
        name = str(rmeta.get("name", ""))
        reused = bool(ann.get(REVISION_HISTORY))
        at = ts_of(rmeta.get("creationTimestamp"))
        if reused and f'"{name}"' in str(progressing.get("message", "")):
            at = ts_of(progressing.get("lastUpdateTime")) or at
        revisions.append(
            Revision(
                number=number,
                name=name,
                hash=str((rmeta.get("labels") or {}).get(HASH_LABEL) or name.rsplit("-", 1)[-1]),
                images=_images((rs.get("spec") or {}).get("template")),
                rollout_at=at,
                reused=reused,
            )
        )
    revisions.sort(key=lambda r: r.number)
    current = _int((meta.get("annotations") or {}).get(REVISION, "0")) or max((r.number for r in revisions), default=0)
    return History(
        "Deployment", str(meta.get("namespace", "")), str(meta.get("name", "")), current, tuple(revisions), now
    )


def statefulset_history(statefulset: Obj, revisions: Iterable[Obj], *, now: float) -> History:
    """The revisions of ``statefulset`` from its ControllerRevisions; ``status.updateRevision`` is current."""
    meta = statefulset.get("metadata") or {}
    uid = meta.get("uid")
    out: list[Revision] = []
    for cr in revisions:
        cmeta = cr.get("metadata") or {}
        refs = cmeta.get("ownerReferences") or []
        if uid and not any(r.get("uid") == uid for r in refs):
            continue
        name = str(cmeta.get("name", ""))
        template = (((cr.get("data") or {}).get("spec") or {}).get("template")) or {}
        out.append(
            Revision(
                number=_int(cr.get("revision", 0)),
                name=name,
                hash=name,
                images=_images(template),
                rollout_at=ts_of(cmeta.get("creationTimestamp")),
            )
        )
    out.sort(key=lambda r: r.number)
    update = str((statefulset.get("status") or {}).get("updateRevision", ""))
    current = next((r.number for r in out if r.name == update), max((r.number for r in out), default=0))
    return History("StatefulSet", str(meta.get("namespace", "")), str(meta.get("name", "")), current, tuple(out), now)


_POD_SUFFIX = re.compile(r"^(?P<hash>[a-z0-9]{5,10})-[a-z0-9]{5}$")


def pod_hash(pod: str, workload: str) -> str:
    """The pod-template-hash in a Deployment pod's name (``web-68d9dc6687-x7k2p`` -> ``68d9dc6687``), else ""."""
    if not pod.startswith(workload + "-"):
        return ""
    m = _POD_SUFFIX.match(pod[len(workload) + 1 :])
    return m.group("hash") if m else ""


def hashes_of(pods: Iterable[str], workload: str) -> list[str]:
    """The distinct pod-template hashes of ``pods``, in order."""
    return list(dict.fromkeys(h for h in (pod_hash(p, workload) for p in pods) if h))


def born_revision(history: History, *, first_seen: float, pods: Sequence[str]) -> Revision | None:
    """The revision a group was born in: that of its first pod when the name says, else the one current then."""
    for h in hashes_of(pods[:1], history.name):
        rev = history.by_hash(h)
        if rev is not None:
            return rev
    rolled = [r for r in history.revisions if r.rollout_at is not None and r.rollout_at <= first_seen]
    return max(rolled, key=lambda r: r.rollout_at or 0.0) if rolled else None


@dataclass(frozen=True, slots=True)
class Correlation:
    """What a group's birth says about the rollouts of its workload (kept per group)."""

    kind: str
    revision: int  # the revision current when the group was first seen
    hash: str
    images: tuple[str, ...]
    rollout_at: float | None
    after_rollout: float | None  # seconds from that revision's rollout to the group's first occurrence
    within_window: bool  # born within ``window`` after the rollout
    seen: tuple[str, ...] = field(default=())  # pod-template hashes the group was seen in

    def to_dict(self) -> Obj:
        return {
            "kind": self.kind,
            "revision": self.revision,
            "hash": self.hash,
            "images": list(self.images),
            "rollout_at": self.rollout_at,
            "after_rollout": self.after_rollout,
            "within_window": self.within_window,
            "seen": list(self.seen),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Correlation:
        def opt(v: object) -> float | None:
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        return cls(
            kind=str(d.get("kind", "")),
            revision=int(d.get("revision", 0)),
            hash=str(d.get("hash", "")),
            images=tuple(str(i) for i in d.get("images") or ()),
            rollout_at=opt(d.get("rollout_at")),
            after_rollout=opt(d.get("after_rollout")),
            within_window=bool(d.get("within_window", False)),
            seen=tuple(str(h) for h in d.get("seen") or ()),
        )

    def with_seen(self, hashes: Iterable[str]) -> Correlation:
        merged = tuple(dict.fromkeys([*self.seen, *hashes]))
        if merged == self.seen:
            return self
        return Correlation(
            self.kind,
            self.revision,
            self.hash,
            self.images,
            self.rollout_at,
            self.after_rollout,
            self.within_window,
            merged,
        )


def correlate(history: History, *, first_seen: float, pods: Sequence[str], window: float) -> Correlation | None:
    """The group's birth revision and whether it was born within ``window`` after that revision's rollout."""
    rev = born_revision(history, first_seen=first_seen, pods=pods)
    if rev is None:
        return None
    after = None if rev.rollout_at is None else first_seen - rev.rollout_at
    seen = hashes_of(pods, history.name) if history.kind == "Deployment" else [rev.hash]
    return Correlation(
        kind=history.kind,
        revision=rev.number,
        hash=rev.hash,
        images=rev.images,
        rollout_at=rev.rollout_at,
        after_rollout=after,
        within_window=after is not None and 0 <= after <= window,
        seen=tuple(dict.fromkeys([rev.hash, *seen])),
    )


def new_since_rollout(corr: Correlation | None, current_hash: str) -> bool:
    """Born within the window after the rollout of the template that runs now."""
    return corr is not None and corr.within_window and bool(current_hash) and corr.hash == current_hash


def _ago(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


def describe(corr: Correlation, *, current_hash: str = "") -> str:
    """ "new since revision 7, image cart:1.4.2, 3 min after the rollout" (or where it was born instead)."""
    images = ", ".join(corr.images) or "image unknown"
    label = "images" if len(corr.images) > 1 else "image"
    when = "" if corr.after_rollout is None else f", {_ago(corr.after_rollout)} after the rollout"
    if new_since_rollout(corr, current_hash or corr.hash):
        return f"new since revision {corr.revision}, {label} {images}{when}"
    return f"first seen in revision {corr.revision}, {label} {images}{when}"


def rollback_refusal(
    history: History | None,
    corr: Correlation | None,
    *,
    first_seen: float,
    seen: Iterable[str] = (),
    to_revision: int = 0,
) -> str:
    """Why a ``new_since_rollout`` rollback must not run ("" = it may). Pure.

    It may only when the group was born after the rollout of the revision running now (by its
    first pod's template where the name tells, else by time), and the revision it would go back
    to (``to_revision``, else the previous one) is not one where the same group was already seen.
    """
    if history is None:
        return "rollout history not read yet: the rollback waits for it"
    current = history.current_revision
    if current is None:
        return f"{history.kind} {history.name}: current revision {history.current} has no readable ReplicaSet"
    if corr is None:
        return "the revision this group was born in is not known"
    if current.rollout_at is None:
        return f"revision {current.number}: rollout time unknown"
    if corr.hash != current.hash or first_seen < current.rollout_at:
        return (
            f"group first seen in revision {corr.revision} ({corr.hash}), not after the rollout of "
            f"the current revision {current.number} ({current.hash})"
        )
    target = history.revision(to_revision) if to_revision else history.previous()
    if target is None:
        wanted = f"revision {to_revision}" if to_revision else "a previous revision"
        return f"{history.kind} {history.name} has no ReplicaSet for {wanted}"
    was_seen = {*corr.seen, *seen}
    if target.hash in was_seen:
        return (
            f"the group was already seen in revision {target.number} ({target.hash}): "
            "rolling back into it would not help"
        )
    return ""
