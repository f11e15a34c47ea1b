"""The Kubernetes adapter against the API peer: resolution, dry-run, and every foreign error mapped."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import urllib3
from kubernetes.client.exceptions import (
    ApiException,
    ApiTypeError,
    ApiValueError,
    ConflictException,
    ForbiddenException,
    NotFoundException,
    ServiceException,
    UnauthorizedException,
    UnprocessableEntityException,
)

from sentinel.core.model import Target
from sentinel.errors import (
    MAX_FOREIGN_CHARS,
    ClusterError,
    ClusterTimeout,
    ClusterUnavailable,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from sentinel.remediation.cluster import FOREIGN_ERRORS, RBAC_FILE, Call, Cluster, selector_string, translate
from tests.peers.kube import KubePeer

CALL = Call("patch", "deployments/scale", "demo", "web", "apps")


def status_body(code: int, message: str) -> str:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code})


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        pytest.param(
            ForbiddenException(status=403, reason="Forbidden", body=status_body(403, "no")), Forbidden, id="403"
        ),
        pytest.param(UnauthorizedException(status=401, reason="Unauthorized"), Forbidden, id="401"),
        pytest.param(NotFoundException(status=404, reason="Not Found"), NotFound, id="404"),
        pytest.param(ApiException(status=410, reason="Gone"), NotFound, id="410"),
        pytest.param(ConflictException(status=409, reason="Conflict"), Conflict, id="409"),
        pytest.param(UnprocessableEntityException(status=422, reason="Unprocessable"), Invalid, id="422"),
        pytest.param(ApiException(status=400, reason="Bad Request"), Invalid, id="400"),
        pytest.param(ApiException(status=415, reason="Unsupported"), Invalid, id="415"),
        pytest.param(ApiException(status=429, reason="Too Many"), ClusterUnavailable, id="429"),
        pytest.param(ServiceException(status=500, reason="Internal"), ClusterUnavailable, id="500"),
        pytest.param(ServiceException(status=503, reason="Unavailable"), ClusterUnavailable, id="503"),
        pytest.param(ApiException(status=0, reason="SSLError\nbad cert"), ClusterUnavailable, id="ssl-status-0"),
        pytest.param(ApiException(status=418, reason="Teapot"), ClusterError, id="other-4xx"),
        pytest.param(
            urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"),  # type: ignore[arg-type]
            ClusterTimeout,
            id="read-timeout",
        ),
        pytest.param(urllib3.exceptions.ConnectTimeoutError("connect timed out"), ClusterTimeout, id="connect-timeout"),
        pytest.param(
            urllib3.exceptions.MaxRetryError(None, "/x", urllib3.exceptions.NewConnectionError(None, "refused")),  # type: ignore[arg-type]
            ClusterUnavailable,
            id="max-retry-refused",
        ),
        pytest.param(urllib3.exceptions.ProtocolError("connection aborted"), ClusterUnavailable, id="protocol"),
        pytest.param(urllib3.exceptions.SSLError("bad handshake"), ClusterUnavailable, id="urllib3-ssl"),
        pytest.param(ConnectionResetError("reset"), ClusterUnavailable, id="connection-reset"),
        pytest.param(TimeoutError("timed out"), ClusterTimeout, id="socket-timeout"),
        pytest.param(json.JSONDecodeError("Expecting value", "<html>", 0), ClusterUnavailable, id="not-json"),
        pytest.param(ApiTypeError("bad type"), ClusterError, id="api-type-error"),
        pytest.param(ApiValueError("bad value"), ClusterError, id="api-value-error"),
    ],
)
def test_every_foreign_error_is_mapped(err: BaseException, expected: type[ClusterError]) -> None:
    assert isinstance(err, FOREIGN_ERRORS), "the adapter would let this one through"
    mapped = translate(err, CALL)
    assert type(mapped) is expected
    assert str(mapped)


def test_forbidden_names_verb_resource_and_rbac_file() -> None:
    mapped = translate(ForbiddenException(status=403, reason="Forbidden", body=status_body(403, "nope")), CALL)
    text = str(mapped)
    assert "cannot patch 'deployments/scale'" in text and "'apps'" in text
    assert RBAC_FILE in text and "nope" in text
    assert mapped.status == 403


def test_foreign_payload_is_capped() -> None:
    mapped = translate(ServiceException(status=500, reason="x", body=status_body(500, "A" * 5000)), CALL)
    assert "A" * (MAX_FOREIGN_CHARS + 1) not in str(mapped)
    assert len(str(mapped)) < MAX_FOREIGN_CHARS + 200


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        pytest.param({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", id="labels"),
        pytest.param(
            {
                "matchExpressions": [
                    {"key": "t", "operator": "In", "values": ["x", "y"]},
                    {"key": "u", "operator": "DoesNotExist"},
                ]
            },
            "t in (x,y),!u",
            id="expressions",
        ),
        pytest.param(None, "", id="none"),
    ],
)
def test_selector_string(selector: dict[str, object] | None, text: str) -> None:
    assert selector_string(selector) == text


# -- against the peer ------------------------------------------------------------------------


def test_version(cluster: Cluster) -> None:
    assert cluster.version()["gitVersion"] == "v1.28.0"


def test_resolve_pod_to_deployment(peer: KubePeer, cluster: Cluster) -> None:
    peer.deployment("web")
    pod = peer.pods()[0]["metadata"]["name"]
    assert cluster.resolve("demo", pod=pod) == Target("demo", "Deployment", "web")


def test_resolve_statefulset_pod(peer: KubePeer, cluster: Cluster) -> None:
    peer.statefulset("db")
    assert cluster.resolve("demo", pod="db-1") == Target("demo", "StatefulSet", "db")


@pytest.mark.parametrize(
    ("kind", "api_version"),
    [pytest.param("DaemonSet", "apps/v1", id="daemonset"), pytest.param("Job", "batch/v1", id="job")],
)
def test_resolve_other_owners(peer: KubePeer, cluster: Cluster, kind: str, api_version: str) -> None:
    peer.add_namespace("demo")
    owner = peer.create(
        {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "agent", "namespace": "demo"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "a"}]},
                },
            },
        }
    )
    ref = {
        "apiVersion": api_version,
        "kind": kind,
        "name": "agent",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    peer.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "agent-x1", "namespace": "demo", "labels": {"app": "agent"}, "ownerReferences": [ref]},
            "spec": {"containers": [{"name": "a", "image": "a"}]},
        }
    )
    assert cluster.resolve("demo", pod="agent-x1") == Target("demo", kind, "agent")


def test_resolve_bare_pod_and_orphan_replicaset(peer: KubePeer, cluster: Cluster) -> None:
    peer.add_namespace("demo")
    peer.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "solo", "namespace": "demo"},
            "spec": {"containers": [{"name": "a", "image": "a"}]},
        }
    )
    assert cluster.resolve("demo", pod="solo") == Target("demo", "Pod", "solo")
    peer.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "rs1", "namespace": "demo"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "rs1"}},
                "template": {
                    "metadata": {"labels": {"app": "rs1"}},
                    "spec": {"containers": [{"name": "a", "image": "a"}]},
                },
            },
        }
    )
    pod = peer.pods(selector="app=rs1")[0]["metadata"]["name"]
    assert cluster.resolve("demo", pod=pod) == Target("demo", "ReplicaSet", "rs1")


def test_resolve_gone_pod_falls_back_to_workload(peer: KubePeer, cluster: Cluster) -> None:
    peer.deployment("web")
    peer.statefulset("db")
    assert cluster.resolve("demo", pod="web-gone-abcde", workload_hint="web") == Target("demo", "Deployment", "web")
    assert cluster.resolve("demo", pod="db-9", workload_hint="db") == Target("demo", "StatefulSet", "db")
    with pytest.raises(NotFound, match="no Deployment named 'db'"):
        cluster.resolve("demo", pod="db-9", workload_hint="db", kinds=("Deployment",))
    with pytest.raises(NotFound):
        cluster.resolve("demo", pod="web-gone-abcde")


def test_dry_run_delete_changes_nothing(peer: KubePeer, cluster: Cluster) -> None:
    peer.deployment("web")
    before = peer.pods()
    name = before[0]["metadata"]["name"]
    out = cluster.delete_pod("demo", name, dry_run=True)
    assert out["metadata"]["name"] == name and "deletionTimestamp" in out["metadata"]
    assert peer.pods() == before
    # in the body, where the server reads it, and not in the query (ignored when a body is sent)
    [seen] = peer.seen("DELETE")
    assert seen.query == {} and seen.body == {"apiVersion": "v1", "kind": "DeleteOptions", "dryRun": ["All"]}


def test_403_from_the_api_names_the_missing_grant(peer: KubePeer, cluster: Cluster) -> None:
    peer.deployment("web")
    peer.deny("patch", "deployments/scale")
    with pytest.raises(Forbidden) as info:
        cluster.patch_scale("demo", "Deployment", "web", 3)
    text = str(info.value)
    assert "cannot patch 'deployments/scale'" in text and RBAC_FILE in text
    assert (
        'cannot patch resource \\"deployments/scale\\"' in text or 'cannot patch resource "deployments/scale"' in text
    )


def test_401_bad_token(peer: KubePeer) -> None:
    c = Cluster.for_host(peer.url, "wrong-token")
    with pytest.raises(Forbidden, match="401"):
        c.get_pod("demo", "x")
    c.close()


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_unavailable(peer: KubePeer, cluster: Cluster, status: int) -> None:
    peer.deployment("web")
    peer.fail(status, path="/deployments/web")
    with pytest.raises(ClusterUnavailable, match=str(status)):
        cluster.get_object("demo", "Deployment", "web")


def test_timeout_is_unavailable(peer: KubePeer) -> None:
    c = Cluster.for_host(peer.url, peer.token, timeout=0.3)
    peer.fail(0, delay=1.0, path="/version", times=5)
    with pytest.raises(ClusterUnavailable, match="timed out"):
        c.version()
    c.close()


def test_unreachable_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Cluster.for_host(f"http://127.0.0.1:{port}", "t", timeout=1.0)
    with pytest.raises(ClusterUnavailable, match="cannot reach"):
        c.version()
    c.close()


def test_conflict_retry_once(peer: KubePeer, cluster: Cluster) -> None:
    attempts: list[int] = []

    def attempt() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise Conflict("stale")
        return "ok"

    assert cluster.retry_on_conflict(attempt) == "ok"
    attempts.clear()

    def always() -> str:
        attempts.append(1)
        raise Conflict("stale")

    with pytest.raises(Conflict):
        cluster.retry_on_conflict(always)
    assert len(attempts) == 2


def test_can_i(peer: KubePeer, cluster: Cluster) -> None:
    peer.deny("delete", "pods", "demo")
    assert not cluster.can_i("delete", "pods", namespace="demo")
    assert cluster.can_i("delete", "pods", namespace="other")
    assert cluster.can_i("patch", "deployments", group="apps", namespace="demo", subresource="scale")


def test_from_config_without_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ClusterUnavailable, match="no cluster configured"):
        Cluster.from_config(kubeconfig=str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    with pytest.raises(ClusterUnavailable, match="in-cluster service account: .*; kubeconfig .*: no such file"):
        Cluster.from_config(in_cluster=True)


def test_from_kubeconfig(peer: KubePeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cfg = tmp_path / "config"
    cfg.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "peer", "cluster": {"server": peer.url}}],
                "users": [{"name": "u", "user": {"token": peer.token}}],
                "contexts": [{"name": "peer", "context": {"cluster": "peer", "user": "u"}}],
                "current-context": "peer",
            }
        )
    )
    c = Cluster.from_config(kubeconfig=str(cfg))
    assert c.version()["minor"] == "28"
    c.close()
