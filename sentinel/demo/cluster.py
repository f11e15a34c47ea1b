"""The demo's recorded cluster state: what ``kube-sentinel demo`` shows of Kubernetes without a cluster.

``cluster.json`` holds Deployments, a StatefulSet, their ReplicaSets / ControllerRevisions, pods
(some crash-looping, OOM-killed, failing to pull, unschedulable, evicted) and Warning Events, in
the shapes of the recordings in ``tests/fixtures/kubernetes`` (list items without ``kind``,
``deployment.kubernetes.io/revision`` annotations, ``pod-template-hash`` labels). Its times are
those of the demo logs' last hour: :class:`RecordedCluster` moves them to the wall clock, as the
demo's file source moves the lines. Regenerate with ``python -m sentinel.demo.cluster``.

:class:`RecordedCluster` answers the reads the context, deploy correlation and pod status make
(GET a workload, LIST pods / events / ReplicaSets / ControllerRevisions by label selector, LIST
pods a page at a time); it never writes: the demo's remediation stays a dry run without a cluster.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel.errors import NotFound

Obj = dict[str, Any]
HERE = Path(__file__).resolve().parent
STATE_FILE = HERE / "cluster.json"
T0 = 1_795_800_000  # the demo logs' first second (sentinel/demo/generate.py)
RECORDED_NOW = T0 + 3600  # the state is as seen at the end of the demo logs' hour
KINDS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Pod": "pods",
}
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shift(value: Any, by: float) -> Any:
    if isinstance(value, dict):
        return {k: _shift(v, by) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, by) for v in value]
    if isinstance(value, str) and _TIME.match(value):
        return _rfc3339(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() + by)
    return value


def _matches(selector: str, labels: dict[str, str]) -> bool:
    for part in filter(None, selector.split(",")):
        key, _, value = part.partition("=")
        if labels.get(key) != value:
            return False
    return True


class RecordedCluster:
    """Read-only answers from ``cluster.json``, its times moved so that its "now" is the clock's."""

    def __init__(self, path: Path = STATE_FILE, *, clock: Callable[[], float] = time.time) -> None:
        state = json.loads(path.read_text(encoding="utf-8"))
        self.objects: dict[str, list[Obj]] = _shift(state["objects"], clock() - RECORDED_NOW)
        self.host = f"recorded:{path.name}"

    def _items(self, plural: str, namespace: str, label_selector: str = "") -> list[Obj]:
        return [
            copy.deepcopy(o)
            for o in self.objects.get(plural, [])
            if (not namespace or o["metadata"].get("namespace") == namespace)
            and _matches(label_selector, o["metadata"].get("labels") or {})
        ]

    def get_object(self, namespace: str, kind: str, name: str) -> Obj:
        for o in self._items(KINDS.get(kind, kind.lower() + "s"), namespace):
            if o["metadata"]["name"] == name:
                return o
        raise NotFound(f"{kind} {namespace}/{name} not found")

    def list_pods(self, namespace: str, *, label_selector: str = "") -> list[Obj]:
        return self._items("pods", namespace, label_selector)

    def list_events(self, namespace: str) -> list[Obj]:
        return self._items("events", namespace)

    def list_replicasets(self, namespace: str, *, label_selector: str = "") -> list[Obj]:
        return self._items("replicasets", namespace, label_selector)

    def list_controllerrevisions(self, namespace: str, *, label_selector: str = "") -> list[Obj]:
        return self._items("controllerrevisions", namespace, label_selector)

    def list_pods_page(self, namespace: str, *, limit: int, continue_token: str = "") -> Obj:
        items = self._items("pods", namespace)
        start = int(continue_token or 0)
        page = items[start : start + limit]
        meta: Obj = {"resourceVersion": "1"}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        return {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page}


def attach(runtime: Any, *, path: Path = STATE_FILE) -> RecordedCluster:
    """Give the demo runtime the recorded cluster for context, deploy correlation and pod status."""
    from sentinel.engine.context import ContextReader
    from sentinel.engine.incidents import Incidents

    recorded = RecordedCluster(path, clock=runtime.clock)
    state = f"recorded cluster state ({path.name}): read-only, remediation stays a dry run"
    runtime.context = ContextReader(recorded, no_cluster=state, clock=runtime.clock)
    runtime.incidents = Incidents.build(runtime.config, recorded, store=runtime.store, clock=runtime.clock)
    runtime.incidents.pods.scan()  # the recorded pods are known at once: the first poll counts their states
    runtime.health.cluster = state
    return recorded


# -- the state itself ------------------------------------------------------------------------------


def _meta(kind: str, ns: str, name: str, at: float, **extra: Any) -> Obj:
    return {
        "name": name,
        "namespace": ns,
        "uid": f"demo-{kind.lower()}-{ns}-{name}",
        "creationTimestamp": _rfc3339(at),
        **extra,
    }


def _container(name: str, image: str) -> Obj:
    return {
        "name": name,
        "image": image,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }


def _deployment(
    ns: str, name: str, container: str, revisions: list[tuple[int, str, str, float]], replicas: int
) -> list[tuple[str, Obj]]:
    """A Deployment and its ReplicaSets: (revision, pod-template-hash, image, rolled out at)."""
    labels = {"app": name}
    current = revisions[-1]
    dep_meta = _meta(
        "Deployment",
        ns,
        name,
        revisions[0][3],
        labels=labels,
        generation=len(revisions),
        annotations={"deployment.kubernetes.io/revision": str(current[0])},
    )
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": dep_meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [_container(container, current[2])]}},
        },
        "status": {
            "observedGeneration": len(revisions),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas - 1,
            "availableReplicas": replicas - 1,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": _rfc3339(current[3] + 40),
                    "lastTransitionTime": _rfc3339(revisions[0][3]),
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}-{current[1]}" has successfully progressed.',
                }
            ],
        },
    }
    out: list[tuple[str, Obj]] = [("deployments", dep)]
    for rev, h, image, at in revisions:
        rs_labels = {**labels, "pod-template-hash": h}
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": dep_meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        out.append(
            (
                "replicasets",
                {
                    "metadata": _meta(
                        "ReplicaSet",
                        ns,
                        f"{name}-{h}",
                        at,
                        labels=rs_labels,
                        annotations={
                            "deployment.kubernetes.io/revision": str(rev),
                            "deployment.kubernetes.io/desired-replicas": str(replicas),
                        },
                        ownerReferences=[owner],
                    ),
                    "spec": {
                        "replicas": replicas if rev == current[0] else 0,
                        "selector": {"matchLabels": rs_labels},
                        "template": {
                            "metadata": {"labels": rs_labels},
                            "spec": {"containers": [_container(container, image)]},
                        },
                    },
                    "status": {"replicas": replicas if rev == current[0] else 0},
                },
            )
        )
    return out


def _pod(
    ns: str,
    name: str,
    owner: tuple[str, str],
    labels: dict[str, str],
    container: str,
    image: str,
    at: float,
    *,
    node: str = "demo-node-1",
    **status: Any,
) -> tuple[str, Obj]:
    kind, owner_name = owner
    base: Obj = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {
                "name": container,
                "image": image,
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": _rfc3339(at)}},
            }
        ],
    }
    base.update(status)
    return (
        "pods",
        {
            "metadata": _meta(
                "Pod",
                ns,
                name,
                at,
                labels=labels,
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": kind,
                        "name": owner_name,
                        "uid": f"demo-{kind.lower()}-{ns}-{owner_name}",
                        "controller": True,
                    }
                ],
            ),
            "spec": {"containers": [_container(container, image)], **({"nodeName": node} if node else {})},
            "status": base,
        },
    )


def _warning(
    ns: str, name: str, kind: str, obj: str, reason: str, message: str, count: int, at: float
) -> tuple[str, Obj]:
    return (
        "events",
        {
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": _rfc3339(at)},
            "involvedObject": {"kind": kind, "namespace": ns, "name": obj},
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet"},
            "firstTimestamp": _rfc3339(at - 600),
            "lastTimestamp": _rfc3339(at),
            "count": count,
            "type": "Warning",
        },
    )


def build_state() -> Obj:
    now, day = RECORDED_NOW, 86400
    items: list[tuple[str, Obj]] = []
    # shop/checkout: revision 7 (checkout:1.4.2) rolled out 3 minutes before the logs' first errors
    items += _deployment(
        "shop",
        "checkout",
        "checkout",
        [
            (6, "5c8f7b6d9", "registry.demo/checkout:1.4.1", now - 9 * day),
            (7, "7d4b9c8f6d", "registry.demo/checkout:1.4.2", T0 - 180),
        ],
        3,
    )
    for pod in ("checkout-7d4b9c8f6d-xk2lp", "checkout-7d4b9c8f6d-q9wzt", "checkout-7d4b9c8f6d-m2hfr"):
        items.append(
            _pod(
                "shop",
                pod,
                ("ReplicaSet", "checkout-7d4b9c8f6d"),
                {"app": "checkout", "pod-template-hash": "7d4b9c8f6d"},
                "checkout",
                "registry.demo/checkout:1.4.2",
                T0 - 170,
            )
        )
    # shop/cart: revision 3 since two days; one pod crash-loops after being OOM-killed
    items += _deployment(
        "shop",
        "cart",
        "cart",
        [
            (2, "6d9c8b7f4", "registry.demo/cart:2.0.3", now - 20 * day),
            (3, "5f6c7d8b9", "registry.demo/cart:2.1.0", now - 2 * day),
        ],
        2,
    )
    cart = {"app": "cart", "pod-template-hash": "5f6c7d8b9"}
    items.append(
        _pod(
            "shop",
            "cart-5f6c7d8b9-xb4cd",
            ("ReplicaSet", "cart-5f6c7d8b9"),
            cart,
            "cart",
            "registry.demo/cart:2.1.0",
            now - 2 * day,
            conditions=[{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            containerStatuses=[
                {
                    "name": "cart",
                    "image": "registry.demo/cart:2.1.0",
                    "ready": False,
                    "restartCount": 6,
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": "back-off 5m0s restarting failed container=cart",
                        }
                    },
                    "lastState": {
                        "terminated": {
                            "reason": "OOMKilled",
                            "exitCode": 137,
                            "finishedAt": _rfc3339(now - 240),
                            "containerID": "containerd://demo-cart-6",
                        }
                    },
                }
            ],
        )
    )
    items.append(
        _pod(
            "shop",
            "cart-5f6c7d8b9-pl2wk",
            ("ReplicaSet", "cart-5f6c7d8b9"),
            cart,
            "cart",
            "registry.demo/cart:2.1.0",
            now - 2 * day,
        )
    )
    items.append(
        _warning(
            "shop",
            "cart-xb4cd.backoff",
            "Pod",
            "cart-5f6c7d8b9-xb4cd",
            "BackOff",
            "Back-off restarting failed container cart in pod cart-5f6c7d8b9-xb4cd_shop",
            41,
            now - 60,
        )
    )
    # shop/frontend: one pod evicted from a node short of memory
    items += _deployment(
        "shop", "frontend", "frontend", [(4, "6b8d9f7c5", "registry.demo/frontend:3.2.0", now - 5 * day)], 3
    )
    fe = {"app": "frontend", "pod-template-hash": "6b8d9f7c5"}
    for pod in ("frontend-6b8d9f7c5-zz5bb", "frontend-6b8d9f7c5-ww2bb", "frontend-6b8d9f7c5-xx4cc"):
        items.append(
            _pod(
                "shop",
                pod,
                ("ReplicaSet", "frontend-6b8d9f7c5"),
                fe,
                "frontend",
                "registry.demo/frontend:3.2.0",
                now - 5 * day,
            )
        )
    items.append(
        _pod(
            "shop",
            "frontend-6b8d9f7c5-vv7ll",
            ("ReplicaSet", "frontend-6b8d9f7c5"),
            fe,
            "frontend",
            "registry.demo/frontend:3.2.0",
            now - 5 * day,
            phase="Failed",
            reason="Evicted",
            message="The node was low on resource: memory. Threshold quantity: 100Mi, available: 60Mi.",
            containerStatuses=[],
        )
    )
    # payments/payments-api: a new replica cannot be scheduled
    items += _deployment(
        "payments", "payments-api", "api", [(12, "84c6d9b7f", "registry.demo/payments-api:5.0.1", now - 3 * day)], 3
    )
    pay = {"app": "payments-api", "pod-template-hash": "84c6d9b7f"}
    for pod in ("payments-api-84c6d9b7f-r7t2n", "payments-api-84c6d9b7f-k8s9d"):
        items.append(
            _pod(
                "payments",
                pod,
                ("ReplicaSet", "payments-api-84c6d9b7f"),
                pay,
                "api",
                "registry.demo/payments-api:5.0.1",
                now - 3 * day,
            )
        )
    items.append(
        _pod(
            "payments",
            "payments-api-84c6d9b7f-z9c2m",
            ("ReplicaSet", "payments-api-84c6d9b7f"),
            pay,
            "api",
            "registry.demo/payments-api:5.0.1",
            now - 900,
            node="",
            phase="Pending",
            containerStatuses=[],
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "lastTransitionTime": _rfc3339(now - 900),
                    "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
                }
            ],
        )
    )
    items.append(
        _warning(
            "payments",
            "payments-api-z9c2m.sched",
            "Pod",
            "payments-api-84c6d9b7f-z9c2m",
            "FailedScheduling",
            "0/3 nodes are available: 3 Insufficient memory.",
            9,
            now - 30,
        )
    )
    # search/search-indexer: revision 9 rolled out 20 minutes ago cannot pull its image
    items += _deployment(
        "search",
        "search-indexer",
        "indexer",
        [
            (8, "6c7d8f9f2", "registry.demo/search-indexer:1.9.0", now - 6 * day),
            (9, "7f8d9c6b4", "registry.demo/search-indexer:2.0.0-rc1", now - 1200),
        ],
        1,
    )
    items.append(
        _pod(
            "search",
            "search-indexer-6c7d8f9f2-h5j6k",
            ("ReplicaSet", "search-indexer-6c7d8f9f2"),
            {"app": "search-indexer", "pod-template-hash": "6c7d8f9f2"},
            "indexer",
            "registry.demo/search-indexer:1.9.0",
            now - 6 * day,
        )
    )
    items.append(
        _pod(
            "search",
            "search-indexer-7f8d9c6b4-q4w7z",
            ("ReplicaSet", "search-indexer-7f8d9c6b4"),
            {"app": "search-indexer", "pod-template-hash": "7f8d9c6b4"},
            "indexer",
            "registry.demo/search-indexer:2.0.0-rc1",
            now - 1190,
            phase="Pending",
            conditions=[{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            containerStatuses=[
                {
                    "name": "indexer",
                    "image": "registry.demo/search-indexer:2.0.0-rc1",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": 'Back-off pulling image "registry.demo/search-indexer:2.0.0-rc1"',
                        }
                    },
                }
            ],
        )
    )
    items.append(
        _warning(
            "search",
            "search-indexer-q4w7z.pull",
            "Pod",
            "search-indexer-7f8d9c6b4-q4w7z",
            "Failed",
            'Failed to pull image "registry.demo/search-indexer:2.0.0-rc1": not found',
            14,
            now - 45,
        )
    )
    # payments/ledger: a StatefulSet at ControllerRevision 2
    ledger = {"app": "ledger"}
    sts_uid = "demo-statefulset-payments-ledger"
    items.append(
        (
            "statefulsets",
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": _meta("StatefulSet", "payments", "ledger", now - 30 * day, labels=ledger, generation=2),
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": ledger},
                    "serviceName": "ledger",
                    "template": {
                        "metadata": {"labels": ledger},
                        "spec": {"containers": [_container("ledger", "registry.demo/ledger:0.9.4")]},
                    },
                },
                "status": {
                    "replicas": 2,
                    "readyReplicas": 2,
                    "currentReplicas": 2,
                    "updatedReplicas": 2,
                    "observedGeneration": 2,
                    "currentRevision": "ledger-6d9f8b7c5",
                    "updateRevision": "ledger-6d9f8b7c5",
                },
            },
        )
    )
    for rev, name, image, at in (
        (1, "ledger-5b7c9d8f6", "registry.demo/ledger:0.9.3", now - 30 * day),
        (2, "ledger-6d9f8b7c5", "registry.demo/ledger:0.9.4", now - 4 * day),
    ):
        items.append(
            (
                "controllerrevisions",
                {
                    "metadata": _meta(
                        "ControllerRevision",
                        "payments",
                        name,
                        at,
                        labels={**ledger, "controller.kubernetes.io/hash": name.rsplit("-", 1)[1]},
                        ownerReferences=[
                            {
                                "apiVersion": "apps/v1",
                                "kind": "StatefulSet",
                                "name": "ledger",
                                "uid": sts_uid,
                                "controller": True,
                            }
                        ],
                    ),
                    "data": {"spec": {"template": {"spec": {"containers": [{"name": "ledger", "image": image}]}}}},
                    "revision": rev,
                },
            )
        )
    for i in range(2):
        items.append(
            _pod(
                "payments",
                f"ledger-{i}",
                ("StatefulSet", "ledger"),
                {**ledger, "controller-revision-hash": "ledger-6d9f8b7c5"},
                "ledger",
                "registry.demo/ledger:0.9.4",
                now - 4 * day,
            )
        )
    objects: dict[str, list[Obj]] = {}
    for plural, obj in items:
        objects.setdefault(plural, []).append(obj)
    return {
        "note": "the demo's cluster as seen at the end of its logs' hour; shapes as in tests/fixtures/kubernetes",
        "recorded_at": _rfc3339(now),
        "objects": objects,
    }


if __name__ == "__main__":
    STATE_FILE.write_text(json.dumps(build_state(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
