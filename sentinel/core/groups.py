"""What a store does to its groups, decided here once for every store. Pure: no I/O, no locks.

- :func:`apply_delta`: a poll's delta merged into the group of its key (or a new group), the
  lifecycle refreshed, and what kind of change that was (new, updated, regressed, escalated);
- :func:`plan_folds` and :func:`fold`: groups whose template was merged into another follow it
  (re-keyed, or absorbed into the group already holding the new key).

The memory, TinyDB and PostgreSQL stores call these and only keep and query the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from sentinel.core.impact import LifecycleSettings, absorb, merge, new_group, refresh
from sentinel.core.model import MAX_SAMPLE_CHARS, ErrorGroup, GroupDelta, cut_text

ChangeKind = Literal["new", "updated", "regressed", "escalated"]
KeyFn = Callable[[str, str, str, str, str], str]  # (namespace, workload, container, template key, level) -> id


def cut_samples(group: ErrorGroup, limit: int = MAX_SAMPLE_CHARS) -> None:
    """Cut sample lines past ``limit`` characters (with a marker), so a few huge lines cannot bloat a group."""
    if any(len(s) > limit for s in group.samples if type(s) is str):
        group.samples = [cut_text(s, limit) if type(s) is str else s for s in group.samples]


def apply_delta(
    group: ErrorGroup | None, delta: GroupDelta, *, now: float, lifecycle: LifecycleSettings | None = None
) -> tuple[ErrorGroup, ChangeKind]:
    """``delta`` added to ``group`` (changed in place), or a new group when ``group`` is None.

    With ``lifecycle``, impact and burst escalation are refreshed too. Returns the group and the
    kind of change: "new", "regressed" (a resolved group came back), "escalated" (a burst raised
    its priority) or "updated".
    """
    kind: ChangeKind
    if group is None:
        group, kind = new_group(delta, now=now), "new"
    else:
        kind = "regressed" if merge(group, delta, now=now) == "regressed" else "updated"
        if delta.samples:
            cut_samples(group)
    if lifecycle is not None and refresh(group, now=now, settings=lifecycle) and kind == "updated":
        kind = "escalated"
    return group, kind


@dataclass(frozen=True, slots=True)
class Fold:
    """One group following its template: ``old_id`` becomes ``new_id`` (template key ``template_key``)."""

    old_id: str
    new_id: str
    template_key: str


def plan_folds(groups: Iterable[ErrorGroup], aliases: Mapping[str, str], *, key_fn: KeyFn) -> list[Fold]:
    """The groups whose template key ``aliases`` replaces, and the id each moves to (unchanged ids left out)."""
    plan = []
    for g in groups:
        new_tk = aliases.get(g.template_key)
        if new_tk is None:
            continue
        new_id = key_fn(g.namespace, g.workload, g.container, new_tk, g.level)
        if new_id != g.id:
            plan.append(Fold(g.id, new_id, new_tk))
    return plan


def fold(moving: ErrorGroup, target: ErrorGroup | None, step: Fold, *, templates: Mapping[str, str]) -> ErrorGroup:
    """Carry out ``step``: ``moving`` re-keyed (when no group holds the new id) or absorbed into ``target``.

    Returns the group now stored under ``step.new_id`` (``moving`` itself, or ``target``).
    """
    if target is None:
        moving.id = step.new_id
        moving.template_key = step.template_key
        moving.template = templates.get(step.template_key, moving.template)
        return moving
    absorb(target, moving)
    target.template = templates.get(step.template_key, target.template)
    return target
