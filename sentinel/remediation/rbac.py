"""Which of the permissions Kube Sentinel needs does the current identity have?

``kube-sentinel check --cluster`` asks the API server one SelfSubjectAccessReview per permission
that the engine and the registered actions declare (``sentinel.core.actions.all_permissions``),
so a missing RBAC verb is found before the first remediation fails.
"""

from __future__ import annotations

import os

from sentinel.core.actions import ACTIONS, ENGINE_PERMISSIONS, Permission, all_permissions
from sentinel.remediation.cluster import Cluster

# Leases live in Kube Sentinel's own namespace (a namespaced Role grants them).
NAMESPACED_GROUPS = {"coordination.k8s.io"}


def own_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "kube-sentinel")


def check_permissions(cluster: Cluster, *, namespace: str | None = None) -> list[tuple[Permission, bool]]:
    """(permission, allowed) for every needed permission, sorted by group, resource, verb."""
    ns = namespace or own_namespace()
    report = []
    for perm in sorted(all_permissions(), key=lambda p: (p.group, p.resource, p.verb)):
        resource, _, sub = perm.resource.partition("/")
        allowed = cluster.can_i(
            perm.verb,
            resource,
            group=perm.group,
            subresource=sub,
            namespace=ns if perm.group in NAMESPACED_GROUPS else "",
        )
        report.append((perm, allowed))
    return report


def needed_by(perm: Permission) -> list[str]:
    """Who needs ``perm``: "engine" and/or the names of the actions that declare it."""
    who = ["engine"] if perm in ENGINE_PERMISSIONS else []
    return who + sorted(name for name, spec in ACTIONS.items() if perm in spec.permissions)
