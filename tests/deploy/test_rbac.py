"""The RBAC the deploy files grant is exactly what ``sentinel.core.actions.all_permissions()`` needs.

Exactly, both ways: a test fails when an action needs a permission no role grants, and when a role
grants one that nothing needs. Three renderings are checked: ``kubectl kustomize deploy/kubernetes``
(skipped, with its reason, only where kubectl is absent), ``deploy/kubernetes/rbac.yaml`` read as
plain YAML (always runs), and the Helm chart (see test_helm.py).
"""

from __future__ import annotations

import collections
import importlib.util

import pytest

from sentinel.core.actions import ACTIONS, all_permissions
from tests.deploy import support

NAMESPACE = "kube-sentinel"


def _rbac_file_objects() -> list[support.Obj]:
    return support.load_docs((support.KUSTOMIZE_DIR / "rbac.yaml").read_text())


def _kustomize_objects() -> list[support.Obj]:
    if support.kubectl() is None:
        pytest.skip("kubectl is not installed: the rbac.yaml (plain YAML) case still runs")
    return support.kustomize_objects()


SOURCES = [
    pytest.param(_kustomize_objects, id="kustomize"),
    pytest.param(_rbac_file_objects, id="rbac.yaml"),
]


def _needed() -> set[tuple[str, str, str]]:
    return {(p.group, p.resource, p.verb) for p in all_permissions()}


def assert_grants_exactly_needed(objs: list[support.Obj]) -> None:
    triples = support.rbac_triples(objs)
    granted = set(triples)
    needed = _needed()
    missing = sorted(needed - granted)
    extra = sorted(granted - needed)
    assert not missing, f"permissions needed (engine or an action) but granted by no role: {missing}"
    assert not extra, f"permissions granted that nothing in sentinel.core.actions needs: {extra}"
    dupes = sorted(t for t, n in collections.Counter(triples).items() if n > 1)
    assert not dupes, f"granted twice (merge the rules): {dupes}"
    assert "*" not in {part for t in triples for part in t}, "no wildcards"


def assert_bound_to_service_account(objs: list[support.Obj], sa_name: str, namespace: str) -> None:
    support.find(objs, "ServiceAccount", sa_name)
    roles = {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in {"ClusterRole", "Role"}}
    bound = set()
    for binding in (o for o in objs if o["kind"] in {"ClusterRoleBinding", "RoleBinding"}):
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        assert (ref["kind"], ref["name"]) in roles, f"{binding['metadata']['name']} binds a missing role {ref}"
        if binding["kind"] == "ClusterRoleBinding":
            assert ref["kind"] == "ClusterRole"
        else:
            assert binding["metadata"]["namespace"] == namespace
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]
        bound.add((ref["kind"], ref["name"]))
    assert bound == roles, f"roles bound to nobody: {sorted(roles - bound)}"


@pytest.mark.parametrize("source", SOURCES)
def test_roles_grant_exactly_what_the_actions_need(source) -> None:
    assert_grants_exactly_needed(source())


@pytest.mark.parametrize("source", SOURCES)
def test_every_role_is_bound_to_the_service_account(source) -> None:
    assert_bound_to_service_account(source(), "kube-sentinel", NAMESPACE)


@pytest.mark.parametrize("source", SOURCES)
def test_leases_only_in_the_own_namespace(source) -> None:
    objs = source()
    cluster = {t[:2] for t in support.rbac_triples(objs, kinds=("ClusterRole",))}
    assert ("coordination.k8s.io", "leases") not in cluster, "Lease rights belong in the namespaced Role"
    role = support.find(objs, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE


def test_every_action_is_covered() -> None:
    """Per action, so a failure names the action whose permission is missing."""
    granted = set(support.rbac_triples(_rbac_file_objects()))
    for name, spec in ACTIONS.items():
        missing = {(p.group, p.resource, p.verb) for p in spec.permissions} - granted
        assert not missing, f"action {name!r} needs {sorted(missing)}"


def test_a_missing_or_extra_grant_fails() -> None:
    """The check itself: drop a needed verb, add an unneeded one; both must fail."""
    objs = _rbac_file_objects()
    role = support.find(objs, "ClusterRole")
    pods = next(r for r in role["rules"] if r["resources"] == ["pods"])
    pods["verbs"].remove("delete")
    with pytest.raises(AssertionError, match="granted by no role"):
        assert_grants_exactly_needed(objs)
    pods["verbs"] += ["delete", "create"]
    with pytest.raises(AssertionError, match="nothing in sentinel.core.actions needs"):
        assert_grants_exactly_needed(objs)


def test_generator_prints_the_same_rules() -> None:
    """``deploy/gen_rbac.py`` (the script to paste from) agrees with rbac.yaml, rule by rule."""
    spec = importlib.util.spec_from_file_location("gen_rbac", support.DEPLOY / "gen_rbac.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cluster, namespaced = gen.split_rules()
    objs = _rbac_file_objects()
    assert support.find(objs, "ClusterRole")["rules"] == cluster
    assert support.find(objs, "Role")["rules"] == namespaced
