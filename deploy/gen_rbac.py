"""Print the RBAC rules Kube Sentinel needs, computed from the action registry.

    python deploy/gen_rbac.py

Writes two YAML rule lists to stdout: the ClusterRole's (everything cluster-wide) and the
namespaced Role's (leases, which live only in Sentinel's own namespace). Paste them into
``deploy/kubernetes/rbac.yaml`` and ``deploy/helm/kube-sentinel/templates/rbac.yaml`` when an
action's permissions change; ``tests/deploy/test_rbac.py`` fails until both match
``sentinel.core.actions.all_permissions()`` exactly.

Rules are grouped readably: one rule per API group and set of verbs, listing every resource that
needs exactly those verbs (subresources such as ``deployments/scale`` get rules of their own).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable

import yaml

# Resources granted by the namespaced Role (in Sentinel's namespace) instead of the ClusterRole.
NAMESPACED: frozenset[tuple[str, str]] = frozenset({("coordination.k8s.io", "leases")})

# kubectl's conventional verb order, so generated rules read like hand-written ones.
_VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")

Triple = tuple[str, str, str]


def _verb_key(verb: str) -> tuple[int, str]:
    return (_VERB_ORDER.index(verb) if verb in _VERB_ORDER else len(_VERB_ORDER), verb)


def group_rules(triples: Iterable[Triple]) -> list[dict[str, list[str]]]:
    """(group, resource, verb) triples -> RBAC rules, one per (group, verb set)."""
    verbs_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for group, resource, verb in triples:
        verbs_of[(group, resource)].add(verb)
    by_verbs: dict[tuple[str, bool, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), verbs in verbs_of.items():
        by_verbs[(group, "/" in resource, tuple(sorted(verbs, key=_verb_key)))].append(resource)
    ordered = sorted(by_verbs.items(), key=lambda kv: (kv[0][0], kv[0][1], sorted(kv[1])))
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verbs)}
        for (group, _sub, verbs), resources in ordered
    ]


def split_rules() -> tuple[list[dict[str, list[str]]], list[dict[str, list[str]]]]:
    """(ClusterRole rules, Role rules) for ``all_permissions()``."""
    from sentinel.core.actions import all_permissions

    triples = [(p.group, p.resource, p.verb) for p in all_permissions()]
    cluster = [t for t in triples if (t[0], t[1]) not in NAMESPACED]
    namespaced = [t for t in triples if (t[0], t[1]) in NAMESPACED]
    return group_rules(cluster), group_rules(namespaced)


def main() -> int:
    cluster, namespaced = split_rules()
    out = sys.stdout
    out.write("# ClusterRole kube-sentinel\n")
    out.write(yaml.safe_dump({"rules": cluster}, sort_keys=False, default_flow_style=None))
    out.write("# Role kube-sentinel-leases (namespace kube-sentinel)\n")
    out.write(yaml.safe_dump({"rules": namespaced}, sort_keys=False, default_flow_style=None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
