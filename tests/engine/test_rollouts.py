"""Deploy correlation and the ``new_since_rollout`` rollback gate.

Pure parts read the recorded ReplicaSets and Deployments (``tests/fixtures/kubernetes``); the
gate runs end to end: log lines -> groups -> gate -> rollback through ``Cluster`` against the
Kubernetes peer, whose rollouts and rollbacks are those of the recordings.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sentinel.bootstrap import build_runtime
from sentinel.config import ConfigError, parse_rules
from sentinel.core.rollouts import (
    Correlation,
    History,
    Revision,
    correlate,
    deployment_history,
    describe,
    new_since_rollout,
    pod_hash,
    rollback_refusal,
    ts_of,
)
from sentinel.engine.incidents import Incidents
from sentinel.engine.rollouts import read_history
from sentinel.engine.runtime import Runtime
from sentinel.engine.settings import limits_of
from sentinel.remediation.cluster import Cluster
from sentinel.sources.files import FileSource
from sentinel.store.memory import MemoryStore
from tests.peers.kube import KubePeer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes"
NS = 1_000_000_000


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# -- pure: the recorded objects ------------------------------------------------------------------


def test_history_of_the_recorded_rollback() -> None:
    """After the rollback the old ReplicaSet is revision 4 (history 1); its rollout time is Progressing's."""
    h = deployment_history(
        recorded("deployment_after_rollback"), recorded("replicasets_after_rollback")["items"], now=0
    )
    assert h.current == 4
    assert [(r.number, r.hash, r.reused) for r in h.revisions] == [
        (2, "8496f6d7b5", False),
        (3, "64b85879d8", False),
        (4, "68d9dc6687", True),
    ]
    cur = h.current_revision
    assert cur is not None and cur.images == ("nginx",)
    assert cur.rollout_at == ts_of("2026-11-28T00:47:03Z")  # Progressing names web-68d9dc6687
    assert h.revision(3) is not None and h.revision(3).rollout_at == ts_of("2026-11-28T00:45:03Z")  # type: ignore[union-attr]
    assert h.previous() is not None and h.previous().number == 3  # type: ignore[union-attr]


def test_history_before_the_rollback() -> None:
    h = deployment_history(
        recorded("deployment_before_rollback"), recorded("replicasets_before_rollback")["items"], now=0
    )
    assert h.current == 3 and h.current_revision is not None and h.current_revision.hash == "64b85879d8"
    assert h.current_revision.rollout_at == ts_of("2026-11-28T00:45:03Z")  # a new ReplicaSet: its creation


def test_pod_hash_from_recorded_pod_names() -> None:
    names = [p["metadata"]["name"] for p in recorded("pods_after_rollout")["items"]]
    hashes = {pod_hash(n, "web") for n in names}
    assert hashes <= {"68d9dc6687", "8496f6d7b5"} and hashes
    assert pod_hash("web-0", "web") == "" and pod_hash("other-68d9dc6687-abcde", "web") == ""


REV3 = deployment_history(
    recorded("deployment_before_rollback"), recorded("replicasets_before_rollback")["items"], now=0
)
T3 = ts_of("2026-11-28T00:45:03Z") or 0.0


def test_correlation_new_since_the_rollout() -> None:
    corr = correlate(REV3, first_seen=T3 + 180, pods=["web-64b85879d8-abcde"], window=3600)
    assert corr is not None and (corr.revision, corr.hash, corr.images) == (3, "64b85879d8", ("nginx",))
    assert corr.after_rollout == 180 and corr.within_window
    assert new_since_rollout(corr, "64b85879d8") and not new_since_rollout(corr, "8496f6d7b5")
    assert describe(corr) == "new since revision 3, image nginx, 3 min after the rollout"
    late = correlate(REV3, first_seen=T3 + 7200, pods=["web-64b85879d8-abcde"], window=3600)
    assert late is not None and not late.within_window
    assert describe(late).startswith("first seen in revision 3")


def test_born_on_an_old_pod_is_born_in_the_old_revision() -> None:
    """A line of an old pod during the rolling update: the group predates the new revision."""
    corr = correlate(REV3, first_seen=T3 + 10, pods=["web-68d9dc6687-abcde"], window=3600)
    assert corr is not None and corr.revision == 1 and not new_since_rollout(corr, "64b85879d8")


def test_without_pod_names_the_time_decides() -> None:
    corr = correlate(REV3, first_seen=T3 - 2, pods=[], window=3600)
    assert corr is not None and corr.revision == 2


def _corr(h: History, first_seen: float, *pods: str) -> Correlation | None:
    return correlate(h, first_seen=first_seen, pods=list(pods), window=3600)


@pytest.mark.parametrize(
    ("first_seen", "pods", "to_revision", "refusal"),
    [
        pytest.param(T3 + 60, ["web-64b85879d8-abcde"], 0, "", id="born-after-current-rollout"),
        pytest.param(
            T3 + 60,
            ["web-64b85879d8-abcde", "web-8496f6d7b5-zzzzz"],
            0,
            "already seen in revision 2",
            id="seen-in-target",
        ),
        pytest.param(T3 + 60, ["web-64b85879d8-abcde", "web-8496f6d7b5-zzzzz"], 1, "", id="to-revision-not-seen"),
        pytest.param(T3 + 60, ["web-8496f6d7b5-zzzzz"], 0, "first seen in revision 2", id="born-on-old-pod"),
        pytest.param(T3 - 2, [], 0, "first seen in revision 2", id="born-before-rollout"),
        pytest.param(T3 + 60, ["web-64b85879d8-abcde"], 9, "no ReplicaSet for revision 9", id="no-such-revision"),
    ],
)
def test_rollback_refusal(first_seen: float, pods: list[str], to_revision: int, refusal: str) -> None:
    got = rollback_refusal(REV3, _corr(REV3, first_seen, *pods), first_seen=first_seen, to_revision=to_revision)
    assert (refusal in got) if refusal else got == ""
    assert bool(got) == bool(refusal)


def test_rollback_refusal_without_history_waits() -> None:
    assert rollback_refusal(None, None, first_seen=0.0).startswith("rollout history not read yet")


def test_a_rollback_back_into_a_seen_template_is_refused() -> None:
    """After the recorded rollback, revision 4 is revision 1's template: a group born there before is old."""
    h = deployment_history(
        recorded("deployment_after_rollback"), recorded("replicasets_after_rollback")["items"], now=0
    )
    t1 = ts_of("2026-11-28T00:44:49Z") or 0.0
    born_rev1 = Correlation("Deployment", 1, "68d9dc6687", ("nginx",), t1, 30.0, True, ("68d9dc6687",))
    assert "not after the rollout of the current revision 4" in rollback_refusal(h, born_rev1, first_seen=t1 + 30)


def test_statefulset_history_from_controllerrevisions() -> None:
    from sentinel.core.rollouts import statefulset_history

    sts = {"metadata": {"name": "db", "namespace": "demo", "uid": "u1"}, "status": {"updateRevision": "db-7b9c"}}

    def cr(name: str, rev: int, image: str, at: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "creationTimestamp": at, "ownerReferences": [{"uid": "u1"}]},
            "revision": rev,
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": image}]}}}},
        }

    h = statefulset_history(
        sts,
        [
            cr("db-7b9c", 2, "postgres:16", "2026-11-28T01:00:00Z"),
            cr("db-5d4f", 1, "postgres:15", "2026-11-28T00:00:00Z"),
        ],
        now=0,
    )
    assert (h.kind, h.current) == ("StatefulSet", 2) and h.current_revision == Revision(
        2, "db-7b9c", "db-7b9c", ("postgres:16",), ts_of("2026-11-28T01:00:00Z")
    )


# -- rules: remediation.when is validated ----------------------------------------------------------


@pytest.mark.parametrize(
    ("remediation", "problem"),
    [
        pytest.param(
            "{action: rollback, when: sometimes}",
            "rules[0] (r).remediation.when: 'sometimes' is not one of always, new_since_rollout",
            id="unknown",
        ),
        pytest.param(
            "{action: restart-pod, when: new_since_rollout}",
            "rules[0] (r).remediation.when: new_since_rollout applies to action rollback only",
            id="not-rollback",
        ),
        pytest.param(
            "{action: rollback, when: [x]}",
            "rules[0] (r).remediation.when: Input should be a valid string",
            id="not-a-string",
        ),
    ],
)
def test_a_bad_when_names_the_rule_and_field(remediation: str, problem: str) -> None:
    import yaml

    data = yaml.safe_load(
        f"rules:\n  - name: r\n    match: {{pattern: x}}\n    priority: P1\n    remediation: {remediation}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_rules(data, source="rules.yaml")
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_when_new_since_rollout_loads() -> None:
    data = {
        "rules": [
            {
                "name": "r",
                "match": {"pattern": "x"},
                "priority": "P1",
                "remediation": {"action": "rollback", "when": "new_since_rollout"},
            }
        ]
    }
    [rule] = parse_rules(data, source="rules.yaml").ruleset.rules
    assert (rule.action, rule.when) == ("rollback", "new_since_rollout")


# -- end to end against the Kubernetes peer --------------------------------------------------------

RULES = """\
rules:
  - name: bad-release
    match: {pattern: "panic: nil map"}
    priority: P1
    remediation: {action: rollback, when: new_since_rollout, cooldown: 0s}
"""

CONFIG = """\
loki: {lookback: 30m, ingest_delay: 0s}
kubernetes: {in_cluster: false, kubeconfig: /nonexistent/kubeconfig, rollout_window: 1h}
remediation: {dry_run: false, max_actions_per_hour: 10, per_workload_per_hour: 10}
rules_file: rules.yaml
store: {type: memory}
"""


def _env(peer: KubePeer, value: str) -> None:
    def change(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": value}]

    peer.set("deployments", "demo", "web", change)


def _pod_of(peer: KubePeer, revision: str) -> str:
    rs = next(
        r
        for r in peer.list_objects("replicasets", "demo")
        if r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == revision
    )
    return f"{rs['metadata']['name']}-x7k2p"  # a pod name of that ReplicaSet (the log line's label)


def _runtime(tmp: Path, peer: KubePeer, lines: list[tuple[str, str, float]]) -> tuple[Runtime, Cluster]:
    (tmp / "rules.yaml").write_text(RULES)
    (tmp / "config.yaml").write_text(CONFIG)
    now = time.time()
    with (tmp / "logs.jsonl").open("w") as f:
        for pod, text, ago in lines:
            labels = {"namespace": "demo", "pod": pod, "container": "nginx"}
            f.write(json.dumps({"ts": int((now - ago) * NS), "labels": labels, "line": text}) + "\n")
    store = MemoryStore()
    cluster = Cluster.for_host(peer.url, peer.token, timeout=5.0)
    rt = build_runtime(tmp / "config.yaml", source=FileSource(tmp / "logs.jsonl"), store=store, env={}, cluster=cluster)
    rt.incidents = Incidents.build(rt.config, cluster, store=store, clock=rt.clock, background=False)
    assert rt.incidents.rollouts.reader.get("demo", "web", wait=5)["state"] == "ok"  # history read before the poll
    return rt, cluster


@pytest.fixture
def two_revisions(kube_peer: KubePeer) -> KubePeer:
    """web at revision 1 since 30 min ago, revision 2 rolled out 10 min ago."""
    now = time.time()
    kube_peer.clock = lambda: now - 1800
    kube_peer.deployment("web", env="v1")
    kube_peer.clock = lambda: now - 600
    _env(kube_peer, "v2")
    kube_peer.clock = time.time
    return kube_peer


def _records(rt: Runtime) -> list[Any]:
    from sentinel.store.base import RecordQuery

    return rt.store.list_remediations(RecordQuery()).items


def test_a_group_born_after_the_rollout_rolls_back(tmp_path: Path, two_revisions: KubePeer) -> None:
    new_pod = _pod_of(two_revisions, "2")
    rt, cluster = _runtime(tmp_path, two_revisions, [(new_pod, "panic: nil map write in handler", 120)])
    assert rt.poll_once().ok
    [record] = _records(rt)
    assert (record.decision, record.result.value, record.reason) == ("allowed", "success", "executed"), record
    assert record.changes["revision"] == [2, 1] and record.params["to_revision"] == 1
    dep = two_revisions.get("deployments", "demo", "web")
    assert dep is not None and dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "v1"}]
    [group] = rt.store.all_groups()
    rollout = rt.incidents.rollout_of(group)
    assert (rollout["state"], rollout["revision"], rollout["images"], rollout["within_window"]) == (
        "ok",
        2,
        ["nginx"],
        True,
    )
    assert rollout["summary"].startswith("new since revision 2, image nginx, ")
    rt.stop()
    cluster.close()


def test_a_group_already_seen_in_the_previous_revision_does_not_roll_back(
    tmp_path: Path, two_revisions: KubePeer
) -> None:
    old_pod, new_pod = _pod_of(two_revisions, "1"), _pod_of(two_revisions, "2")
    # first seen on a new pod after the rollout, but also on a pod of revision 1
    lines = [(new_pod, "panic: nil map write in handler", 300), (old_pod, "panic: nil map write in handler", 200)]
    rt, cluster = _runtime(tmp_path, two_revisions, lines)
    assert rt.poll_once().ok
    [record] = _records(rt)
    assert (record.decision, record.reason_code) == ("denied", "not-new-since-rollout")
    assert "already seen in revision 1" in record.reason
    assert two_revisions.seen("PATCH") == []  # nothing was rolled back
    rt.stop()
    cluster.close()


def test_a_group_born_before_the_rollout_does_not_roll_back(tmp_path: Path, two_revisions: KubePeer) -> None:
    old_pod = _pod_of(two_revisions, "1")
    rt, cluster = _runtime(tmp_path, two_revisions, [(old_pod, "panic: nil map write in handler", 900)])
    assert rt.poll_once().ok
    [record] = _records(rt)
    assert record.decision == "denied" and "first seen in revision 1" in record.reason
    assert two_revisions.seen("PATCH") == []
    [group] = rt.store.all_groups()
    assert not rt.incidents.is_new_since_rollout(group)
    rt.stop()
    cluster.close()


def test_read_history_of_a_statefulset_and_of_neither(kube_peer: KubePeer) -> None:
    kube_peer.statefulset("db")
    cluster = Cluster.for_host(kube_peer.url, kube_peer.token, timeout=5.0)
    got = read_history(cluster, "demo", "db", now=1.0)
    assert got["history"].kind == "StatefulSet"  # no ControllerRevisions on the peer: an empty history
    assert read_history(cluster, "demo", "nothing", now=1.0)["history"] is None
    assert [s.path for s in kube_peer.seen("GET") if "controllerrevisions" in s.path]
    cluster.close()


def test_the_api_shows_the_rollout_and_filters_new_since_rollout(tmp_path: Path, two_revisions: KubePeer) -> None:
    from sentinel.api.app import create_app
    from tests.api.conftest import serve

    old_pod, new_pod = _pod_of(two_revisions, "1"), _pod_of(two_revisions, "2")
    lines = [(new_pod, "panic: nil map write in handler", 120), (old_pod, "worker stopped: disk full", 900)]
    rt, cluster = _runtime(tmp_path, two_revisions, lines)
    rt.remediator.set_limits(dataclasses.replace(limits_of(rt.config, rt.settings), enabled=False))  # no rollback here
    assert rt.poll_once().ok
    by_template = {g.template.split(":")[0]: g for g in rt.store.all_groups()}
    panic, disk = by_template["panic"], by_template["worker stopped"]
    for served in serve(create_app(rt), rt):
        new = served.client.get("/api/errors", params={"new_since_rollout": "true"}).json()
        old = served.client.get("/api/errors", params={"new_since_rollout": "false"}).json()
        detail = served.client.get(f"/api/errors/{disk.id}").json()
    rt.stop()
    cluster.close()
    assert [r["id"] for r in new["items"]] == [panic.id] and new["items"][0]["new_since_rollout"] is True
    assert [r["id"] for r in old["items"]] == [disk.id]
    rollout = detail["rollout"]
    assert (rollout["state"], rollout["revision"], rollout["new_since_rollout"]) == ("ok", 1, False)
    assert rollout["summary"].startswith("first seen in revision 1, image nginx")
    assert detail["new_since_rollout"] is False and detail["source"] == "logs"
