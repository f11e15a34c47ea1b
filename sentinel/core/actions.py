"""The registry of remediation action specs: name, typed params, RBAC permissions, blast radius.

Pure data: the doers that call the Kubernetes API live in ``sentinel.remediation`` and are looked
up by name. Rules validate their ``remediation.params`` against these models when they load, the
console lists the actions, ``check --cluster`` and the RBAC test read the permissions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sentinel.core.durations import parse_duration

BlastRadius = Literal["none", "pod", "pods", "workload"]


@dataclass(frozen=True, slots=True)
class Permission:
    """One RBAC grant: API group ("" for core), resource (``deployments/scale``), verb."""

    group: str
    resource: str
    verb: str


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


class RestartPodParams(Params):
    grace_period: int | None = Field(default=None, ge=0, le=86_400, description="seconds; default: the pod's own")
    method: Literal["evict", "delete"] = Field(
        default="evict",
        description="evict: the Eviction API, which PodDisruptionBudgets can refuse (429); delete: a plain DELETE",
    )


MAX_REPLICAS = 1000  # a scale action never asks for (or steps by) more replicas than this


def _bounded_replicas(text: str, v: object) -> str:
    if abs(int(text)) > MAX_REPLICAS:
        raise ValueError(f"replicas must be at most {MAX_REPLICAS} (step or absolute), got {v!r}")
    return text


class ScaleUpParams(Params):
    replicas: str = Field(default="+1", description='"+N" to add N, or "N" for an absolute count')
    max_replicas: int = Field(default=10, ge=1, le=MAX_REPLICAS)

    @field_validator("replicas", mode="before")
    @classmethod
    def _replicas(cls, v: object) -> str:
        text = str(v).strip()
        if not re.fullmatch(r"\+?\d+", text):
            raise ValueError(f'replicas must be "+N" (step) or "N" (absolute), got {v!r}')
        return _bounded_replicas(text, v)


class ScaleDownParams(Params):
    replicas: str = Field(default="-1", description='"-N" to remove N, or "N" for an absolute count')
    min_replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)

    @field_validator("replicas", mode="before")
    @classmethod
    def _replicas(cls, v: object) -> str:
        text = str(v).strip()
        if not re.fullmatch(r"-?\d+", text):
            raise ValueError(f'replicas must be "-N" (step) or "N" (absolute), got {v!r}')
        return _bounded_replicas(text, v)


class RollbackParams(Params):
    to_revision: int = Field(default=0, ge=0, description="0 = the previous revision")


class DeleteStuckPodsParams(Params):
    older_than: float = Field(default=300.0, description="Terminating for longer than this (duration)")

    @field_validator("older_than", mode="before")
    @classmethod
    def _older_than(cls, v: object) -> float:
        return parse_duration(v)


def scale_target(current: int, replicas: str, *, lower: int, upper: int) -> int:
    """Replica count after applying ``replicas`` ("+1", "-2", "3") to ``current``, clamped."""
    step = replicas.startswith(("+", "-"))
    wanted = current + int(replicas) if step else int(replicas)
    return max(lower, min(upper, wanted))


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    description: str
    params: type[Params]
    permissions: tuple[Permission, ...]
    blast_radius: BlastRadius
    target: Literal["none", "pod", "workload"]
    # The workload kinds the action applies to (looked up in this order when the pod is gone).
    kinds: tuple[str, ...] = ()


# Permissions every remediation needs to resolve its target: pod -> ReplicaSet -> owner.
RESOLVE = (Permission("", "pods", "get"), Permission("apps", "replicasets", "get"))

# Permissions the engine itself needs, outside any action.
ENGINE_PERMISSIONS = (
    Permission("", "pods", "list"),
    Permission("", "pods", "watch"),
    Permission("", "events", "get"),
    Permission("", "events", "list"),
    Permission("", "events", "watch"),
    Permission("", "namespaces", "get"),
    Permission("", "namespaces", "list"),
    Permission("", "namespaces", "watch"),
    Permission("coordination.k8s.io", "leases", "get"),
    Permission("coordination.k8s.io", "leases", "create"),
    Permission("coordination.k8s.io", "leases", "update"),
    # incidents: Kubernetes context and deploy correlation read the workload and its revisions
    Permission("apps", "deployments", "get"),
    Permission("apps", "statefulsets", "get"),
    Permission("apps", "daemonsets", "get"),
    Permission("apps", "replicasets", "list"),
    Permission("apps", "controllerrevisions", "list"),
)

_WORKLOAD_PATCH = tuple(
    Permission("apps", res, verb) for res in ("deployments", "statefulsets", "daemonsets") for verb in ("get", "patch")
)

ACTIONS: dict[str, ActionSpec] = {}


def register(spec: ActionSpec) -> ActionSpec:
    if spec.name in ACTIONS:
        raise ValueError(f"action {spec.name!r} registered twice")
    ACTIONS[spec.name] = spec
    return spec


register(ActionSpec("none", "Record only; no call to the cluster.", NoParams, (), "none", "none"))
register(
    ActionSpec(
        "restart-pod",
        "Evict the pod (PodDisruptionBudgets hold) so its controller recreates it; method: delete deletes it.",
        RestartPodParams,
        (*RESOLVE, Permission("", "pods/eviction", "create"), Permission("", "pods", "delete")),
        "pod",
        "pod",
    )
)
register(
    ActionSpec(
        "rollout-restart",
        "Restart the owning workload as `kubectl rollout restart` does.",
        NoParams,
        (*RESOLVE, *_WORKLOAD_PATCH),
        "workload",
        "workload",
        ("Deployment", "StatefulSet", "DaemonSet"),
    )
)
_SCALE = (
    *RESOLVE,
    # the workload is looked up by name when the group's pod no longer exists
    Permission("apps", "deployments", "get"),
    Permission("apps", "statefulsets", "get"),
    Permission("apps", "deployments/scale", "get"),
    Permission("apps", "deployments/scale", "patch"),
    Permission("apps", "statefulsets/scale", "get"),
    Permission("apps", "statefulsets/scale", "patch"),
)
register(
    ActionSpec(
        "scale-up",
        "Add replicas to the owning Deployment or StatefulSet (bounded by max_replicas).",
        ScaleUpParams,
        _SCALE,
        "workload",
        "workload",
        ("Deployment", "StatefulSet"),
    )
)
register(
    ActionSpec(
        "scale-down",
        "Remove replicas from the owning Deployment or StatefulSet (bounded by min_replicas).",
        ScaleDownParams,
        _SCALE,
        "workload",
        "workload",
        ("Deployment", "StatefulSet"),
    )
)
register(
    ActionSpec(
        "rollback",
        "Put the owning Deployment back on its previous revision, as `kubectl rollout undo` does.",
        RollbackParams,
        (
            *RESOLVE,
            Permission("apps", "deployments", "get"),
            Permission("apps", "deployments", "patch"),
            Permission("apps", "replicasets", "list"),
        ),
        "workload",
        "workload",
        ("Deployment",),
    )
)
register(
    ActionSpec(
        "delete-stuck-pods",
        "Force-delete (grace 0) the workload's pods Terminating longer than older_than.",
        DeleteStuckPodsParams,
        (
            *RESOLVE,
            Permission("apps", "deployments", "get"),
            Permission("apps", "statefulsets", "get"),
            Permission("apps", "daemonsets", "get"),
            Permission("batch", "jobs", "get"),
            # a Deployment's pods are matched through its ReplicaSets' owner uids, never by name
            Permission("apps", "replicasets", "list"),
            Permission("", "pods", "list"),
            Permission("", "pods", "delete"),
        ),
        "pods",
        "workload",
        ("Deployment", "StatefulSet", "DaemonSet"),
    )
)


def validate_params(action: str, params: Mapping[str, Any] | None) -> Params:
    """The typed params of ``action``; ``ValueError`` naming the action and each bad field."""
    spec = ACTIONS.get(action)
    if spec is None:
        known = ", ".join(sorted(ACTIONS))
        raise ValueError(f"unknown action {action!r} (known: {known})")
    try:
        return spec.params.model_validate(dict(params or {}))
    except ValidationError as err:
        parts = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "params"
            parts.append(f"params.{loc}: {e['msg']}")
        raise ValueError(f"action {action!r}: " + "; ".join(parts)) from None


def all_permissions() -> set[Permission]:
    """Every permission the engine and the registered actions need: what the ClusterRole must grant."""
    perms: set[Permission] = set(ENGINE_PERMISSIONS)
    for spec in ACTIONS.values():
        perms.update(spec.permissions)
    return perms
