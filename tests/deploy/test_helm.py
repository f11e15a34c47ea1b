"""The Helm chart renders into the same objects, RBAC and config as the kustomize base.

Two renderers, both parametrized here:

- ``helm``: ``helm template`` (and ``helm lint``) with the real binary, from ``$HELM`` or ``PATH``;
  skipped, saying so, where there is none (no registry this project installs from packages helm
  itself);
- ``substitute``: ``tests/deploy/gotemplate.py``, a small Go-template renderer for exactly the
  constructs the templates use, which always runs. Where helm is present too,
  ``test_substitute_agrees_with_helm`` proves the two render the same objects.

The test ids say which path ran.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from sentinel.core.actions import all_permissions
from tests.deploy import support
from tests.deploy.test_rbac import assert_bound_to_service_account

RELEASE = "sentinel"
NAMESPACE = "monitoring"


def _helm(*extra: str) -> list[support.Obj]:
    if support.helm() is None:
        pytest.skip("helm is not installed (set HELM=/path/to/helm): the substitute renderer case ran instead")
    return support.render_chart_helm(RELEASE, NAMESPACE, *extra)


def _substitute(*extra: str) -> list[support.Obj]:
    values = yaml.safe_load((support.CHART_DIR / "values.yaml").read_text())
    assert len(extra) % 2 == 0 and all(flag == "--set" for flag in extra[::2]), extra
    for assignment in extra[1::2]:  # --set a.b=c, as helm reads it (true/false become booleans)
        path, _, raw = assignment.partition("=")
        *parents, leaf = path.split(".")
        node = values
        for key in parents:
            node = node[key]
        node[leaf] = {"true": True, "false": False}.get(raw, raw)
    return support.render_chart_substitute(RELEASE, NAMESPACE, values)


RENDERERS = [pytest.param(_helm, id="helm"), pytest.param(_substitute, id="substitute")]


@pytest.fixture(params=RENDERERS)
def render(request):
    return request.param


def test_objects_are_valid_client_models(render) -> None:
    objs = render()
    assert sorted(o["kind"] for o in objs) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
        + ["ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"]
    )
    for obj in objs:
        support.to_model(obj)
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_rbac_is_exactly_all_permissions(render) -> None:
    objs = render()
    granted = set(support.rbac_triples(objs))
    assert granted == {(p.group, p.resource, p.verb) for p in all_permissions()}
    assert_bound_to_service_account(objs, RELEASE, NAMESPACE)


def test_config_is_the_shipped_config(render) -> None:
    objs = render()
    data = support.find(objs, "ConfigMap", f"{RELEASE}-config")["data"]
    assert data == {n: p.read_text(encoding="utf-8") for n, p in support.CONFIG_FILES.items()}


def test_matches_the_kustomize_pod(render) -> None:
    """Same container as deploy/kubernetes (names aside): image, probes, security, resources, env."""
    pod = support.find(render(), "Deployment")["spec"]["template"]["spec"]
    base = support.find(support.manifest_objects(), "Deployment")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    (b,) = base["containers"]
    assert c["image"] == "kube-sentinel:0.1.0"
    for key in ("args", "ports", "startupProbe", "livenessProbe", "readinessProbe", "securityContext", "volumeMounts"):
        assert c[key] == b[key], key
    assert c["resources"] == b["resources"]
    assert [e["name"] for e in c["env"]] == [e["name"] for e in b["env"]]
    assert pod["securityContext"] == base["securityContext"]
    service = support.find(render(), "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_persistence_can_be_turned_off(render) -> None:
    objs = render("--set", "persistence.enabled=false")
    assert not [o for o in objs if o["kind"] == "PersistentVolumeClaim"]
    pod = support.find(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]


def test_values_blocks_match_config() -> None:
    """values.yaml's config/rules are config/*.yaml: on failure run python deploy/sync_config.py"""
    values = yaml.safe_load((support.CHART_DIR / "values.yaml").read_text())
    assert values["config"] == support.CONFIG_FILES["config.yaml"].read_text(encoding="utf-8")
    assert values["rules"] == support.CONFIG_FILES["rules.yaml"].read_text(encoding="utf-8")


def _by_identity(objs: list[support.Obj]) -> dict[tuple[str, str], support.Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


@pytest.mark.parametrize("extra", [(), ("--set", "persistence.enabled=false")], ids=["defaults", "no-pvc"])
def test_substitute_agrees_with_helm(extra: tuple[str, ...]) -> None:
    """Object for object (helm sorts by kind, the substitute by file: order aside)."""
    helm_objs = _by_identity(_helm(*extra))
    substitute_objs = _by_identity(_substitute(*extra))
    assert sorted(substitute_objs) == sorted(helm_objs)
    for key, obj in helm_objs.items():
        assert substitute_objs[key] == obj, key


def test_helm_lint() -> None:
    exe = support.helm()
    if exe is None:
        pytest.skip("helm is not installed (set HELM=/path/to/helm)")
    done = subprocess.run(
        [exe, "lint", "--strict", str(support.CHART_DIR)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_postgresql_url_secret_is_optional_and_can_name_another_secret(render) -> None:
    def ref(objs: list) -> dict:
        (c,) = support.find(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e for e in c["env"]}["KUBE_SENTINEL_STORE_URL"]["valueFrom"]["secretKeyRef"]

    assert ref(render()) == {"name": "kube-sentinel-secrets", "key": "store-url", "optional": True}
    got = ref(render("--set", "postgresql.urlSecret.name=sentinel-db-app", "--set", "postgresql.urlSecret.key=uri"))
    assert got == {"name": "sentinel-db-app", "key": "uri", "optional": True}
