"""The Kubernetes API peer answers the recorded requests in kube-apiserver v1.28's recorded shapes.

The recordings (``tests/fixtures/kubernetes`` or ``/work/shared/fixtures/kubernetes``) were taken in
one session; :func:`test_recorded_session` replays their requests in order against the peer and
compares status codes, Status bodies (exactly, but for generated names and the user), and the
shape of the objects: kinds, the metadata the API sets, deletion fields, revisions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers import kube
from tests.peers.kube import USER, KubePeer, selector_matches

# until tests/conftest.py registers them for every test
kube_peer, kube_peer_server = kube.kube_peer, kube.kube_peer_server


def _fixture_dir() -> Path:
    candidates = [
        Path(os.environ.get("SENTINEL_KUBE_FIXTURES", "")),
        Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes",
        Path("/work/shared/fixtures/kubernetes"),
    ]
    for path in candidates:
        if str(path) not in ("", ".") and (path / "version.meta.json").is_file():
            return path
    raise RuntimeError("Kubernetes recordings not found: copy them to tests/fixtures/kubernetes")


FIXTURES = _fixture_dir()


def meta(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.meta.json").read_text())
    return doc


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / meta(name)["response"]["body_file"]).read_text())


class Replayer:
    def __init__(self, peer: KubePeer) -> None:
        self.peer = peer
        self.http = httpx.Client(base_url=peer.url, headers={"Authorization": f"Bearer {peer.token}"}, timeout=5)
        self.names: dict[str, str] = {}  # recorded generated name -> ours
        self.sent: set[str] = set()  # the recordings replayed so far

    def renames(self) -> list[tuple[str, str]]:
        return sorted(self.names.items(), key=lambda kv: -len(kv[0]))  # pod names before their ReplicaSet's

    def send(self, name: str, *, url: str | None = None, body: Any = None) -> httpx.Response:
        req = meta(name)["request"]
        path = url or req["url"].split("6443", 1)[1]
        for theirs, ours in self.renames():
            path = path.replace(theirs, ours)
        content = json.dumps(body).encode() if body is not None else (req["body"] or "").encode() or None
        headers = {k: v for k, v in req["headers"].items() if k.lower() == "content-type"}
        resp = self.http.request(req["method"], path, content=content, headers=headers)
        self.sent.add(name)
        assert resp.status_code == meta(name)["response"]["status"], (name, resp.text)
        assert resp.headers["content-type"] == "application/json"
        return resp

    def same_status(self, name: str, resp: httpx.Response) -> None:
        theirs = json.dumps(recorded(name)).replace("limited-viewer", USER)
        for recorded_name, ours in self.renames():
            theirs = theirs.replace(recorded_name, ours)
        assert resp.json() == json.loads(theirs)


def shape_of_meta(obj: dict[str, Any]) -> set[str]:
    return set(obj["metadata"]) - {"managedFields"}


@pytest.fixture
def rp(kube_peer: KubePeer) -> Replayer:
    return Replayer(kube_peer)


def test_recorded_session(rp: Replayer, kube_peer: KubePeer) -> None:
    # namespaces
    assert rp.send("version").json() == recorded("version")
    ns = rp.send("create_namespace_demo").json()
    assert ns["kind"] == "Namespace" and ns["status"] == {"phase": "Active"}
    rp.same_status("create_namespace_demo_again_409", rp.send("create_namespace_demo_again_409"))

    # a Deployment, its ReplicaSet and pods
    dep = rp.send("create_deployment").json()
    want = recorded("create_deployment")
    assert dep["spec"] == want["spec"] and dep["status"] == {}
    assert shape_of_meta(dep) == shape_of_meta(want)
    invalid = rp.send("create_deployment_invalid_422").json()
    assert invalid["reason"] == "Invalid" and invalid["code"] == 422
    assert [c["field"] for c in invalid["details"]["causes"]] == [
        c["field"] for c in recorded("create_deployment_invalid_422")["details"]["causes"]
    ]
    rs_list = rp.send("replicasets_after_create").json()
    want_rs = recorded("replicasets_after_create")
    assert rs_list["kind"] == want_rs["kind"] and set(rs_list["metadata"]) == set(want_rs["metadata"])
    [rs] = rs_list["items"]
    assert "kind" not in rs and shape_of_meta(rs) == shape_of_meta(want_rs["items"][0])
    assert rs["metadata"]["annotations"] == want_rs["items"][0]["metadata"]["annotations"]
    assert rs["spec"]["selector"]["matchLabels"]["pod-template-hash"] == rs["metadata"]["labels"]["pod-template-hash"]
    rp.names["web-68d9dc6687"] = rs["metadata"]["name"]
    pods = rp.send("pods_after_create").json()["items"]
    assert len(pods) == 2
    rp.names["web-68d9dc6687-ptp45"] = pods[0]["metadata"]["name"]
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert pods[0]["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    got = rp.send("deployment_after_create").json()
    assert shape_of_meta(got) - {"annotations"} <= shape_of_meta(recorded("deployment_after_create"))
    assert got["spec"] == recorded("deployment_after_create")["spec"]
    assert rp.send("controllerrevisions_none_for_deployments").json()["items"] == []
    status = rp.send("deployment_status_after_create").json()
    assert status["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}

    # server-side dry-run delete returns the pod and deletes nothing
    dry = rp.send("dryrun_delete_pod").json()
    want_dry = recorded("dryrun_delete_pod")
    assert shape_of_meta(dry) == shape_of_meta(want_dry)
    assert dry["metadata"]["deletionGracePeriodSeconds"] == 0
    after = rp.send("pod_after_dryrun_delete").json()
    assert "deletionTimestamp" not in after["metadata"]
    assert after["metadata"]["resourceVersion"] == dry["metadata"]["resourceVersion"]

    # an unscheduled pod goes at once, and is replaced
    gone = rp.send("delete_pod").json()
    assert int(gone["metadata"]["resourceVersion"]) > int(dry["metadata"]["resourceVersion"])
    rp.same_status("delete_pod_again_404", rp.send("delete_pod_again_404"))
    assert len(rp.send("pods_after_delete_replaced").json()["items"]) == 2
    rp.same_status("delete_missing_pod_404", rp.send("delete_missing_pod_404"))
    rp.same_status("delete_pod_with_body_deleteoptions", rp.send("delete_pod_with_body_deleteoptions"))

    # the scale subresource
    scale = rp.send("get_scale").json()
    want_scale = recorded("get_scale")
    assert set(scale) == set(want_scale) and set(scale["metadata"]) == set(want_scale["metadata"])
    assert scale["spec"] == want_scale["spec"] and scale["status"]["selector"] == "app=web"
    assert rp.send("patch_scale_merge").json()["spec"] == {"replicas": 3}
    assert rp.send("patch_scale_dryrun").json()["spec"] == {"replicas": 5}
    rp.same_status("put_scale_stale_resourceversion_409", rp.send("put_scale_stale_resourceversion_409"))
    assert rp.send("deployment_after_scale").json()["spec"]["replicas"] == 3

    # rollout restart (with an env change, as recorded): revision 2
    restarted = rp.send("patch_deployment_rollout_restart").json()
    assert restarted["spec"]["template"] == recorded("patch_deployment_rollout_restart")["spec"]["template"]
    revs = {
        r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for r in rp.send("replicasets_after_rollout").json()["items"]
    }
    assert revs == {"1", "2"}
    assert rp.send("deployment_after_rollout").json()["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "2"
    }
    rp.send("pods_after_rollout")
    rp.send("patch_deployment_env_v3")
    assert len(rp.send("replicasets_after_rev3").json()["items"]) == 3

    # RBAC refusals: the same Status bodies as the recording (our user instead of theirs)
    kube_peer.deny("list", "pods")
    kube_peer.deny("delete", "pods")
    kube_peer.deny("patch", "deployments/scale")
    for name in (
        "forbidden_list_pods_limited_token_403",
        "forbidden_delete_pod_limited_token_403",
        "forbidden_patch_scale_limited_token_403",
    ):
        rp.same_status(name, rp.send(name))
    review = rp.send("selfsubjectaccessreview_limited").json()
    want_review = recorded("selfsubjectaccessreview_limited")
    assert review["status"] == want_review["status"] and review["spec"] == want_review["spec"]
    assert review["kind"] == want_review["kind"]
    kube_peer.denied.clear()
    bad = httpx.get(f"{kube_peer.url}/api/v1/namespaces/demo/pods", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json() == recorded("unauthorized_bad_token_401")
    rp.sent.add("unauthorized_bad_token_401")  # sent above with a bad token instead of ours

    # a pod bound to a node: graceful delete leaves it Terminating; grace 0 removes it
    rp.send("create_node")
    node = rp.send("get_node").json()
    assert node["kind"] == "Node" and node["metadata"]["name"] == "fake-node-1"
    bound = rp.send("create_pod_bound_to_node").json()
    assert bound["spec"]["nodeName"] == "fake-node-1"
    kube_peer.clock = lambda: 1795826707.0
    first = rp.send("delete_bound_pod_grace_30").json()
    assert first["metadata"]["deletionGracePeriodSeconds"] == 30
    assert first["metadata"]["deletionTimestamp"] == "2026-11-28T00:45:37Z"
    assert rp.send("get_bound_pod_terminating").json() == first
    assert rp.send("delete_bound_pod_again_grace_30").json() == first  # nothing changes
    forced = rp.send("delete_bound_pod_force_grace_0").json()
    assert forced["metadata"]["deletionGracePeriodSeconds"] == 0
    assert forced["metadata"]["deletionTimestamp"] == "2026-11-28T00:45:07Z"
    rp.same_status("get_bound_pod_after_force_404", rp.send("get_bound_pod_after_force_404"))

    # pagination
    page1 = rp.send("list_pods_page1_limit2").json()
    assert len(page1["items"]) == 2 and page1["metadata"]["continue"] and page1["metadata"]["remainingItemCount"] >= 1
    page2 = rp.http.get("/api/v1/namespaces/demo/pods", params={"limit": 2, "continue": page1["metadata"]["continue"]})
    assert page2.status_code == 200 and not {p["metadata"]["name"] for p in page2.json()["items"]} & {
        p["metadata"]["name"] for p in page1["items"]
    }
    rp.sent.add("list_pods_page2_continue")  # sent above with our continue token instead of theirs
    bad_continue = rp.send("list_pods_bad_continue_400").json()
    assert bad_continue["reason"] == "BadRequest" and bad_continue["message"].startswith("invalid continue token")

    # rollback: write revision 1's template back (PUT with the resourceVersion); the old RS is reused
    before = rp.send("deployment_before_rollback").json()
    rs_items = rp.send("replicasets_before_rollback").json()["items"]
    rev1 = next(r for r in rs_items if r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1")
    template = rev1["spec"]["template"]
    del template["metadata"]["labels"]["pod-template-hash"]
    before["spec"]["template"] = template
    rp.send("put_deployment_rollback_to_rev1_template", body=before)
    after_rs = {
        r["metadata"]["name"]: r["metadata"]["annotations"]
        for r in rp.send("replicasets_after_rollback").json()["items"]
    }
    assert after_rs[rev1["metadata"]["name"]]["deployment.kubernetes.io/revision"] == "4"
    assert after_rs[rev1["metadata"]["name"]]["deployment.kubernetes.io/revision-history"] == "1"
    assert rp.send("deployment_after_rollback").json()["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "4"
    }
    # the same PUT again is stale now
    stale = rp.http.put("/apis/apps/v1/namespaces/demo/deployments/web", json=before)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    final = rp.send("deployment_final").json()
    # recorded before the rollback in that session: the shape is compared, not the revision
    assert final["kind"] == "Deployment" and shape_of_meta(final) == shape_of_meta(recorded("deployment_final"))
    pods_final = rp.send("pods_final").json()
    assert pods_final["kind"] == "PodList" and all("kind" not in p for p in pods_final["items"])
    events = rp.send("events_demo").json()
    assert events["kind"] == recorded("events_demo")["kind"] and events["items"] == []  # the peer records none

    replay_dry_run_on_delete(rp, kube_peer)
    everything = {p.name.removesuffix(".meta.json") for p in FIXTURES.glob("*.meta.json")}
    assert everything - rp.sent == set(), "recordings not replayed against the peer"


def replay_dry_run_on_delete(rp: Replayer, peer: KubePeer) -> None:
    """The dryRun-on-DELETE session (recorded later, namespace dryrun): body beats query."""
    peer.add_namespace("dryrun")
    for name in ("victim-a", "victim-b", "victim-c"):  # their creation was not recorded
        peer.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "dryrun", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            }
        )
    # dryRun=All in the query next to a DeleteOptions body: a REAL delete, as the server did
    real = rp.send("dryrun_query_with_body_delete_pod").json()
    want = recorded("dryrun_query_with_body_delete_pod")
    assert real["kind"] == want["kind"] and shape_of_meta(real) == shape_of_meta(want)
    assert real["metadata"]["deletionGracePeriodSeconds"] == want["metadata"]["deletionGracePeriodSeconds"] == 0
    rp.same_status("pod_after_dryrun_query_with_body_404", rp.send("pod_after_dryrun_query_with_body_404"))
    # dryRun in the body: a true dry run
    dry = rp.send("dryrun_in_body_delete_pod").json()
    assert shape_of_meta(dry) == shape_of_meta(recorded("dryrun_in_body_delete_pod"))
    still = rp.send("pod_after_dryrun_in_body").json()
    assert shape_of_meta(still) == shape_of_meta(recorded("pod_after_dryrun_in_body"))
    assert "deletionTimestamp" not in still["metadata"]
    assert still["metadata"]["resourceVersion"] == dry["metadata"]["resourceVersion"]
    # dryRun in the query and no body: honoured
    dry_q = rp.send("dryrun_query_no_body_delete_pod").json()
    assert shape_of_meta(dry_q) == shape_of_meta(recorded("dryrun_query_no_body_delete_pod"))
    assert "deletionTimestamp" not in rp.send("pod_after_dryrun_query_no_body").json()["metadata"]
    # an unknown dryRun value: 422, the recorded Status exactly
    rp.same_status("delete_pod_bad_dryrun_value_422", rp.send("delete_pod_bad_dryrun_value_422"))
    assert peer.get("pods", "dryrun", "victim-c") is not None


def test_leases(kube_peer: KubePeer) -> None:
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    base = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kube-sentinel"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2026-11-28T00:45:07.000000Z"},
    }
    created = http.post(base, json=lease)
    assert created.status_code == 201
    assert http.post(base, json=lease).json()["reason"] == "AlreadyExists"
    got = http.get(f"{base}/kube-sentinel").json()
    assert got["spec"]["holderIdentity"] == "a"
    got["spec"]["holderIdentity"] = "b"
    assert http.put(f"{base}/kube-sentinel", json=got).status_code == 200
    got["spec"]["holderIdentity"] = "c"  # stale resourceVersion: someone else renewed first
    conflict = http.put(f"{base}/kube-sentinel", json=got)
    assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"
    assert http.get(f"{base}/kube-sentinel").json()["spec"]["holderIdentity"] == "b"
    assert http.get(f"{base}/missing").status_code == 404
    missing_ns = http.post("/apis/coordination.k8s.io/v1/namespaces/nope/leases", json=lease)
    assert missing_ns.status_code == 404
    kube_peer.deny("update", "leases")
    assert http.put(f"{base}/kube-sentinel", json=http.get(f"{base}/kube-sentinel").json()).status_code == 403


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param("app=web", {"app": "web"}, True, id="eq"),
        pytest.param("app==web,tier!=db", {"app": "web", "tier": "fe"}, True, id="eq-neq"),
        pytest.param("tier!=db", {"tier": "db"}, False, id="neq-miss"),
        pytest.param("env in (a, b)", {"env": "b"}, True, id="in"),
        pytest.param("env notin (a,b)", {"env": "a"}, False, id="notin"),
        pytest.param("app", {}, False, id="exists-miss"),
        pytest.param("!app", {}, True, id="not-exists"),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


def test_list_by_label_selector_and_dry_run_create(kube_peer: KubePeer) -> None:
    kube_peer.deployment("web")
    kube_peer.deployment("api")
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    pods = http.get("/api/v1/namespaces/demo/pods", params={"labelSelector": "app=api"}).json()["items"]
    assert {p["metadata"]["labels"]["app"] for p in pods} == {"api"}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "a", "image": "a"}]},
    }
    assert http.post("/api/v1/namespaces/demo/pods", params={"dryRun": "All"}, json=body).status_code == 201
    assert kube_peer.get("pods", "demo", "x") is None


def test_cascade_delete(kube_peer: KubePeer) -> None:
    kube_peer.deployment("web")
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    resp = http.delete("/apis/apps/v1/namespaces/demo/deployments/web")
    assert resp.status_code == 200 and resp.json()["status"] == "Success"
    assert kube_peer.list_objects("replicasets", "demo") == [] and kube_peer.pods() == []


# -- modelled on the documentation (no recording): eviction, PodDisruptionBudgets, dry-run values ----


def _evict(http: httpx.Client, pod: str, *, query: str = "", dry: list[str] | None = None, name: str = "") -> Any:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name or pod}}
    if dry is not None:
        body["deleteOptions"] = {"dryRun": dry}
    return http.post(f"/api/v1/namespaces/demo/pods/{pod}/eviction{query}", json=body)


def test_eviction_and_disruption_budgets(kube_peer: KubePeer) -> None:
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    kube_peer.node_name = "node-1"  # running and ready: what a budget guards
    kube_peer.deployment("web", replicas=2)
    kube_peer.pdb("web", minAvailable=2)
    pdb = kube_peer.get("poddisruptionbudgets", "demo", "web")
    assert pdb is not None and pdb["status"] == {
        "observedGeneration": 1,
        "disruptionsAllowed": 0,
        "currentHealthy": 2,
        "desiredHealthy": 2,
        "expectedPods": 2,
    }
    a, b = (p["metadata"]["name"] for p in kube_peer.pods())
    refused = _evict(http, a)
    assert refused.status_code == 429
    assert refused.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
                }
            ]
        },
        "code": 429,
    }
    # an unknown value in deleteOptions.dryRun is a 422, as in a DELETE; a wrong name a 400
    assert _evict(http, a, query="?dryRun=All", dry=["Nope"]).status_code == 422
    assert _evict(http, a, name="other").status_code == 400
    kube_peer.set("poddisruptionbudgets", "demo", "web", lambda o: o["spec"].update(minAvailable=1))
    # dry-run in the query, in deleteOptions, or both (propagateDryRun): nothing changes
    for query, dry in (("?dryRun=All", None), ("", ["All"]), ("?dryRun=All", ["All"])):
        ok = _evict(http, a, query=query, dry=dry)
        assert ok.status_code == 201 and ok.json()["status"] == "Success"
        assert "deletionTimestamp" not in (kube_peer.get("pods", "demo", a) or {})["metadata"]
    assert _evict(http, a).status_code == 201  # for real: Terminating, with the DisruptionTarget condition
    gone = kube_peer.get("pods", "demo", a)
    assert gone is not None and gone["metadata"]["deletionTimestamp"]
    assert {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
    } in gone["status"]["conditions"]
    # a second budget over the same pods: the eviction subresource refuses to choose
    kube_peer.pdb("web-2", app="web", maxUnavailable=1)
    assert _evict(http, b).status_code == 500
    kube_peer.deny("create", "pods/eviction")
    assert _evict(http, b).status_code == 403


def test_pending_pod_is_evicted_whatever_the_budget(kube_peer: KubePeer) -> None:
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    kube_peer.deployment("web", replicas=1)  # unscheduled: Pending, which a budget does not guard
    kube_peer.pdb("web", minAvailable=1)
    pod = kube_peer.pods()[0]["metadata"]["name"]
    assert _evict(http, pod).status_code == 201 and kube_peer.get("pods", "demo", pod) is None


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        pytest.param("PATCH", "/apis/apps/v1/namespaces/demo/deployments/web/scale", "PatchOptions", id="patch"),
        pytest.param("POST", "/api/v1/namespaces/demo/pods", "CreateOptions", id="post"),
        pytest.param("DELETE", "/api/v1/namespaces/demo/pods/x", "DeleteOptions", id="delete-query-no-body"),
    ],
)
def test_unknown_dry_run_value_in_the_query_is_422(kube_peer: KubePeer, method: str, path: str, options: str) -> None:
    kube_peer.deployment("web")
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    body = {"spec": {"replicas": 3}} if method == "PATCH" else {}
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    resp = http.request(method, path, params={"dryRun": "Yes"}, json=body or None, headers=headers)
    assert resp.status_code == 422
    assert resp.json()["message"].startswith(f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value')


def test_dry_run_ignored_switch_makes_dry_runs_real(kube_peer: KubePeer) -> None:
    """A server (or webhook) that does not honour dry-run: what the defence-in-depth tests force."""
    kube_peer.deployment("web")
    http = httpx.Client(base_url=kube_peer.url, headers={"Authorization": f"Bearer {kube_peer.token}"})
    pod = kube_peer.pods()[0]["metadata"]["name"]
    kube_peer.dry_run_ignored.add("DELETE")
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "dryRun": ["All"]}
    assert http.request("DELETE", f"/api/v1/namespaces/demo/pods/{pod}", json=body).status_code == 200
    assert kube_peer.get("pods", "demo", pod) is None
