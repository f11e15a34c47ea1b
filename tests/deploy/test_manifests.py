"""The Kubernetes manifests: both deploy paths render, parse into the client's models, and say
what the design says (non-root, read-only, probes, volumes, the shipped config).

The two paths of the README are checked alike: ``kubectl kustomize deploy/kubernetes`` (what
``kubectl apply -k`` applies; skipped with its reason where kubectl is absent) and the plain files
``kubectl apply -f`` takes one by one (always runs).
"""

from __future__ import annotations

import pytest
import yaml

from tests.deploy import support

NAMESPACE = "kube-sentinel"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _kustomize() -> list[support.Obj]:
    if support.kubectl() is None:
        pytest.skip("kubectl is not installed: the plain-manifests case still runs")
    return support.kustomize_objects()


SOURCES = [
    pytest.param(_kustomize, id="kustomize"),
    pytest.param(support.manifest_objects, id="apply-f"),
]


@pytest.fixture(params=SOURCES)
def objs(request) -> list[support.Obj]:
    return request.param()


def _container(objs: list[support.Obj]) -> support.Obj:
    (container,) = support.find(objs, "Deployment", "kube-sentinel")["spec"]["template"]["spec"]["containers"]
    return container


def test_every_object_is_a_valid_client_model(objs) -> None:
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
        + ["ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"]
    )
    for obj in objs:
        support.to_model(obj)


def test_namespaced_objects_live_in_kube_sentinel(objs) -> None:
    for obj in objs:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj["metadata"]["name"]
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


def test_deployment_security_context(objs) -> None:
    deployment = support.to_model(support.find(objs, "Deployment", "kube-sentinel"))
    pod = deployment.spec.template.spec
    assert deployment.spec.replicas == 1
    assert deployment.spec.strategy.type == "Recreate"  # RWO volume, one writer
    assert pod.service_account_name == support.find(objs, "ServiceAccount")["metadata"]["name"]
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.run_as_user == 10001
    assert pod.security_context.fs_group == 10001
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    (c,) = pod.containers
    sc = c.security_context
    assert sc.run_as_non_root is True
    assert sc.read_only_root_filesystem is True
    assert sc.allow_privilege_escalation is False
    assert sc.capabilities.drop == ["ALL"] and not sc.capabilities.add
    assert sc.seccomp_profile.type == "RuntimeDefault"
    assert not sc.privileged


def test_deployment_probes(objs) -> None:
    c = support.to_model(support.find(objs, "Deployment"))
    (c,) = c.spec.template.spec.containers
    (port,) = c.ports
    assert (port.name, port.container_port) == ("http", 8080)
    assert (c.liveness_probe.http_get.path, c.liveness_probe.http_get.port) == ("/health", "http")
    assert (c.readiness_probe.http_get.path, c.readiness_probe.http_get.port) == ("/ready", "http")
    assert (c.startup_probe.http_get.path, c.startup_probe.http_get.port) == ("/health", "http")
    # The startup probe gives the console at least a minute before liveness may kill it.
    assert c.startup_probe.period_seconds * c.startup_probe.failure_threshold >= 60


def test_deployment_resources_env_and_args(objs) -> None:
    c = _container(objs)
    assert c["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert c["args"] == [
        "run",
        "--config",
        "/etc/kube-sentinel/config.yaml",
        "--rules",
        "/etc/kube-sentinel/rules.yaml",
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    example = yaml.safe_load((support.KUSTOMIZE_DIR / "secret.example.yaml").read_text())
    for var in (
        "KUBE_SENTINEL_LOKI_PASSWORD",
        "KUBE_SENTINEL_LOKI_BEARER_TOKEN",
        "KUBE_SENTINEL_API_TOKEN",
        "KUBE_SENTINEL_STORE_URL",
    ):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["optional"] is True, f"{var}: a missing secret must not stop the pod"
        assert ref["name"] == example["metadata"]["name"]
        assert ref["key"] in example["stringData"]


def test_volumes(objs) -> None:
    pod = support.find(objs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert set(mounts) == {"/etc/kube-sentinel", "/data", "/tmp"}
    data = volumes[mounts["/data"]["name"]]
    pvc = support.find(objs, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    config = volumes[mounts["/etc/kube-sentinel"]["name"]]
    assert mounts["/etc/kube-sentinel"]["readOnly"] is True
    support.find(objs, "ConfigMap", config["configMap"]["name"])  # the reference resolves


def test_configmap_holds_the_shipped_config(objs) -> None:
    """The mounted ConfigMap's files are config/config.yaml and config/rules.yaml, byte for byte."""
    pod = support.find(objs, "Deployment")["spec"]["template"]["spec"]
    name = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    data = support.find(objs, "ConfigMap", name)["data"]
    assert data == {n: p.read_text(encoding="utf-8") for n, p in support.CONFIG_FILES.items()}


def test_service_port_80_to_container_8080(objs) -> None:
    service = support.to_model(support.find(objs, "Service", "kube-sentinel"))
    (port,) = service.spec.ports
    assert (port.name, port.port) == ("http", 80)
    by_name = {p["name"]: p["containerPort"] for p in _container(objs)["ports"]}
    target = by_name[port.target_port] if isinstance(port.target_port, str) else port.target_port
    assert target == 8080
    labels = support.find(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service.spec.selector.items() <= labels.items()


def test_kustomize_generates_a_hashed_configmap() -> None:
    """configMapGenerator's name carries a content hash and the Deployment follows it, so a config
    change rolls the pod; without --load-restrictor, from the copies in deploy/kubernetes/config."""
    objs = _kustomize()
    cm = support.find(objs, "ConfigMap")
    assert cm["metadata"]["name"].startswith("kube-sentinel-config-")
    pod = support.find(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": cm["metadata"]["name"]}} in pod["volumes"]


def test_kustomization_leaves_the_secret_alone() -> None:
    kustomization = yaml.safe_load((support.KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    assert "configmap.yaml" not in kustomization["resources"]  # the generator makes it
    assert "secretGenerator" not in kustomization
    secret = support.to_model(yaml.safe_load((support.KUSTOMIZE_DIR / "secret.example.yaml").read_text()))
    assert secret.metadata.namespace == NAMESPACE


@pytest.mark.parametrize("name", sorted(support.CONFIG_FILES))
def test_kustomize_copies_match_config(name: str) -> None:
    """deploy/kubernetes/config/ holds byte copies of config/ (kustomize reads no file outside its
    folder). On failure run: python deploy/sync_config.py"""
    copy = support.KUSTOMIZE_DIR / "config" / name
    assert copy.read_bytes() == support.CONFIG_FILES[name].read_bytes(), (
        f"{copy.relative_to(support.ROOT)} differs from config/{name}: run python deploy/sync_config.py"
    )
    assert not copy.is_symlink()  # kustomize refuses symlinks that leave its folder


def test_configmap_yaml_is_up_to_date() -> None:
    cm = yaml.safe_load((support.KUSTOMIZE_DIR / "configmap.yaml").read_text())
    expected = {n: p.read_text(encoding="utf-8") for n, p in support.CONFIG_FILES.items()}
    assert cm["data"] == expected, "deploy/kubernetes/configmap.yaml is stale: run python deploy/sync_config.py"
