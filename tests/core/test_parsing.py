"""Parsing: message and level of JSON, logfmt, klog, panics, tracebacks and plain lines; workloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.core.model import LogEntry
from sentinel.core.parsing import parse, parse_line, parse_message, workload_from_pod, workload_of


@pytest.mark.parametrize(
    ("line", "message", "level"),
    [
        pytest.param(
            '{"level":"error","msg":"failed to connect","error":"dial tcp: refused"}',
            "failed to connect: dial tcp: refused",
            "error",
            id="json-msg-error",
        ),
        pytest.param('{"severity":"ERROR","message":"boom"}', "boom", "error", id="json-severity"),
        pytest.param('{"log":"plain inside json"}', "plain inside json", "unknown", id="json-log"),
        pytest.param('{"err":"only an err"}', "only an err", "error", id="json-err-only"),
        pytest.param(
            'level=error ts=2026-01-01T00:00:00Z msg="redis error" err="i/o timeout"',
            "redis error: i/o timeout",
            "error",
            id="logfmt",
        ),
        pytest.param('time="2026" level=warn msg="slow"', "slow", "warning", id="logfmt-warn"),
        pytest.param(
            "E0115 10:23:45.123456   12345 reflector.go:123] failed to list *v1.Pod",
            "failed to list *v1.Pod",
            "error",
            id="klog-error",
        ),
        pytest.param("F0115 10:23:45.123456       1 main.go:9] cannot start", "cannot start", "fatal", id="klog-fatal"),
        pytest.param(
            "panic: runtime error: index out of range",
            "panic: runtime error: index out of range",
            "fatal",
            id="go-panic",
        ),
        pytest.param(
            "Traceback (most recent call last):", "Traceback (most recent call last):", "error", id="python-traceback"
        ),
        pytest.param("2026-11-28T10:00:00.123Z ERROR payment failed", "payment failed", "error", id="ts-level-prefix"),
        pytest.param(
            "[ERROR] plugin/errors: 2 a.example. A: i/o timeout",
            "plugin/errors: 2 a.example. A: i/o timeout",
            "error",
            id="bracket-level",
        ),
        pytest.param(
            "2026-11-28 10:46:24.135 UTC [4802] FATAL:  sorry, too many clients already",
            "sorry, too many clients already",
            "fatal",
            id="postgres",
        ),
        pytest.param("something failed badly", "something failed badly", "error", id="plain-fail"),
        pytest.param("all quiet", "all quiet", "unknown", id="plain-unknown"),
        pytest.param("{not json", "{not json", "unknown", id="broken-json"),
        pytest.param(
            "panic: runtime error: invalid memory address or nil pointer dereference\n"
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1f2e]\n\n"
            "goroutine 1 [running]:\nmain.handler(0xc000010000)\n\t/app/main.go:42 +0x1d\n"
            "main.main()\n\t/app/main.go:12 +0x25\nexit status 2",
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "fatal",
            id="go-panic-multiline",
        ),
        pytest.param(
            "Traceback (most recent call last):\n"
            '  File "/app/worker.py", line 88, in run\n    total = int(row["qty"])\n'
            "ValueError: invalid literal for int() with base 10: 'x'\n",
            "Traceback (most recent call last): ValueError: invalid literal for int() with base 10: 'x'",
            "error",
            id="python-traceback-multiline",
        ),
        pytest.param(
            "ERROR:root:order 7 failed\nTraceback (most recent call last):\n"
            "  File \"/app/w.py\", line 3, in <module>\n    f()\nKeyError: 'sku'",
            "root:order 7 failed KeyError: 'sku'",
            "error",
            id="python-logged-traceback",
        ),
        pytest.param(
            "2026-12-01 10:00:00.123 ERROR 1 --- [nio-8080-exec-3] c.e.shop.OrderService : Order failed\n"
            "org.springframework.dao.DataAccessResourceFailureException: could not connect\n"
            "\tat org.springframework.orm.jpa.X.y(X.java:12)\n\tat com.example.A.b(A.java:7)\n"
            "Caused by: org.postgresql.util.PSQLException: Connection to db:5432 refused.\n"
            "\tat org.postgresql.core.v3.C.d(C.java:300)\n\t... 42 more",
            "1 --- [nio-8080-exec-3] c.e.shop.OrderService : Order failed "
            "org.springframework.dao.DataAccessResourceFailureException: could not connect "
            "Caused by: org.postgresql.util.PSQLException: Connection to db:5432 refused.",
            "error",
            id="java-caused-by",
        ),
        pytest.param(
            'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\n'
            "\tat java.util.Arrays.copyOf(Arrays.java:3332)\n\tat Main.main(Main.java:5)",
            'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
            "error",
            id="java-oom-head",
        ),
        pytest.param(
            '{"kind":"Event","reason":"FailedScheduling","type":"Warning","message":"0/3 nodes are available",'
            '"involvedObject":{"kind":"Pod","name":"web-0"}}',
            "FailedScheduling: 0/3 nodes are available",
            "warning",
            id="k8s-event-json",
        ),
    ],
)
def test_parse_message(line: str, message: str, level: str) -> None:
    assert parse_message(line) == (message, level)


@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        pytest.param("api-7d4b9c8f6d-xk2lp", "api", id="deployment"),
        pytest.param("payments-api-84c6d9b7f-r7t2n", "payments-api", id="deployment-dashed"),
        pytest.param("postgres-0", "postgres", id="statefulset"),
        pytest.param("kafka-12", "kafka", id="statefulset-2-digits"),
        pytest.param("nightly-report-29012345-8xk2d", "nightly-report", id="cronjob"),
        pytest.param("backup-28391160-m4x7q", "backup", id="cronjob-not-the-job-run"),
        pytest.param("migrate-db-x7k2p", "migrate-db", id="job"),
        pytest.param("node-exporter-x7k2p", "node-exporter", id="daemonset"),
        pytest.param("standalone", "standalone", id="bare-pod"),
        pytest.param("", "", id="empty"),
    ],
)
def test_workload_from_pod(pod: str, workload: str) -> None:
    assert workload_from_pod(pod) == workload


def test_pod_name_wins_over_labels() -> None:
    # canary and stable share app=web; several PostgreSQL StatefulSets share app=postgresql
    assert workload_of({"app": "web", "pod": "web-canary-7d4b9c8f6d-xk2lp"}) == "web-canary"
    assert workload_of({"app": "web", "pod": "web-68d9dc6687-ptp45"}) == "web"
    assert workload_of({"app": "postgresql", "pod": "orders-postgresql-0"}) == "orders-postgresql"
    assert workload_of({"app": "postgresql", "pod": "billing-postgresql-1"}) == "billing-postgresql"
    assert workload_of({"app.kubernetes.io/name": "db", "pod": "postgres-0"}) == "postgres"


def test_labels_are_hints_when_there_is_no_pod() -> None:
    assert workload_of({"app": "shop"}) == "shop"
    assert workload_of({"pod": "postgres-0"}) == "postgres"
    assert workload_of({"service_name": "loki-svc"}) == "loki-svc"


@pytest.mark.parametrize(
    ("labels", "workload"),
    [
        pytest.param({"namespace": "kube-system", "pod": "kube-scheduler-cp-1"}, "kube-scheduler", id="scheduler"),
        pytest.param(
            {"namespace": "kube-system", "pod": "kube-apiserver-kind-control-plane"}, "kube-apiserver", id="apiserver"
        ),
        pytest.param(
            {"namespace": "kube-system", "pod": "kube-controller-manager-ip-10-0-1-23.ec2.internal"},
            "kube-controller-manager",
            id="controller-manager-dotted-node",
        ),
        pytest.param({"namespace": "kube-system", "pod": "etcd-master-1"}, "etcd", id="etcd"),
        pytest.param({"namespace": "kube-system", "pod": "kube-proxy-x7k2p"}, "kube-proxy", id="kube-proxy-daemonset"),
        pytest.param(
            {"namespace": "edge", "pod": "haproxy-worker-7", "node_name": "worker-7"}, "haproxy", id="static-by-node"
        ),
        pytest.param({"namespace": "data", "pod": "etcd-2"}, "etcd", id="etcd-statefulset-elsewhere"),
    ],
)
def test_static_pods_belong_to_their_component(labels: dict[str, str], workload: str) -> None:
    assert workload_of(labels) == workload


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes"


def test_real_pod_names_give_their_deployment_across_rollouts() -> None:
    """Every pod recorded from the real v1.28 server, across create, rollout, rev3 and rollback."""
    seen: dict[str, str] = {}
    for path in sorted(FIXTURES.glob("pods_*[!a].json")):
        for pod in json.loads(path.read_text(encoding="utf-8"))["items"]:
            rs = pod["metadata"]["ownerReferences"][0]["name"]
            seen[pod["metadata"]["name"]] = rs
    rs_owner = {}
    for path in sorted(FIXTURES.glob("replicasets_*[!a].json")):
        for rs in json.loads(path.read_text(encoding="utf-8"))["items"]:
            rs_owner[rs["metadata"]["name"]] = rs["metadata"]["ownerReferences"][0]["name"]
    assert len(set(seen.values())) >= 3  # three ReplicaSets: the rollouts are in the data
    for pod, rs in seen.items():
        assert workload_from_pod(pod) == rs_owner[rs] == "web"


def test_parse_entry_uses_detected_level() -> None:
    p = parse(
        LogEntry(1, {"namespace": "ns", "pod": "web-0", "container": "c", "detected_level": "error"}, "all quiet")
    )
    assert (p.namespace, p.pod, p.container, p.workload, p.level) == ("ns", "web-0", "c", "web", "error")


@pytest.mark.parametrize(
    ("kind", "name", "subject"),
    [
        # a StatefulSet pod's claim "<template>-<set>-<ordinal>" belongs to the StatefulSet
        pytest.param(
            "PersistentVolumeClaim",
            "data-orders-postgresql-1",
            ("db", "orders-postgresql", "orders-postgresql-1"),
            id="statefulset-claim",
        ),
        # a claim not named by a StatefulSet is its own subject
        pytest.param("PersistentVolumeClaim", "uploads", ("db", "uploads", ""), id="plain-claim"),
        pytest.param("ReplicaSet", "web-7d4b9c8f6d", ("db", "web", ""), id="replicaset"),
    ],
)
def test_event_subject_is_the_top_level_owner(kind: str, name: str, subject: tuple[str, str, str]) -> None:
    line = json.dumps(
        {
            "reason": "ProvisioningFailed",
            "type": "Warning",
            "message": 'failed to provision volume with StorageClass "gp3"',
            "involvedObject": {"kind": kind, "namespace": "db", "name": name},
        }
    )
    assert parse_line(line)[2] == subject
