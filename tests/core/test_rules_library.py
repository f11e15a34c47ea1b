"""The shipped rule library (config/rules.yaml) on real message strings, as the software prints them.

Each line is written the way it reaches Loki: a Kubernetes event through an event exporter (JSON),
klog from control-plane components, PostgreSQL's stderr log, a JVM or Go service. The format
strings are cited in config/rules.yaml next to each rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.config import load_rules
from sentinel.core.parsing import parse_message

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_rules(ROOT / "config" / "rules.yaml").ruleset


def event(reason: str, message: str, *, kind: str = "Warning", obj: str = "Pod") -> str:
    """A core/v1 Event as kubernetes-event-exporter writes it."""
    return json.dumps(
        {
            "metadata": {"name": "x.17c", "namespace": "shop"},
            "reason": reason,
            "message": message,
            "type": kind,
            "involvedObject": {"kind": obj, "namespace": "shop", "name": "web-7d4b9c8f6d-xk2lp"},
            "source": {"component": "kubelet"},
            "count": 3,
        }
    )


PG = "2026-12-01 10:46:24.135 UTC [4802] "

LIBRARY = [
    # (line, rule, priority)
    (event("BackOff", "Back-off restarting failed container api in pod api-0_shop(1c2d)"), "crashloop-backoff", "P1"),
    (event("SystemOOM", "System OOM encountered, victim process: java, pid: 4123", obj="Node"), "oom-killed", "P1"),
    ("Memory cgroup out of memory: Killed process 4123 (java) total-vm:15791416kB", "oom-killed", "P1"),
    (
        "2026-12-01 10:00:00.123 ERROR 1 --- [nio-8080-exec-3] o.a.c.c.C.[dispatcherServlet] : Servlet.service() "
        "threw exception\njava.lang.OutOfMemoryError: Java heap space\n\tat java.util.Arrays.copyOf(Arrays.java:3332)",
        "jvm-out-of-memory",
        "P1",
    ),
    ('Exception in thread "main" java.lang.OutOfMemoryError: GC overhead limit exceeded', "jvm-out-of-memory", "P1"),
    (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1f2e]\n\ngoroutine 1 [running]:",
        "panic",
        "P1",
    ),
    (PG + 'PANIC:  could not write to file "pg_wal/xlogtemp.4802": No space left on device', "disk-full", "P1"),
    (
        'E1201 10:00:00.000001    2201 kubelet.go:1512] "Failed to write" err="write /var/lib/kubelet/x: '
        'no space left on device"',
        "disk-full",
        "P1",
    ),
    (PG + "FATAL:  sorry, too many clients already", "postgres-unavailable", "P1"),
    (
        PG + "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
        "postgres-unavailable",
        "P1",
    ),
    (PG + "FATAL:  the database system is in recovery mode", "postgres-unavailable", "P1"),
    (PG + "FATAL:  the database system is starting up", "postgres-restarting", "P2"),
    (PG + "FATAL:  the database system is shutting down", "postgres-restarting", "P2"),
    (PG + 'FATAL:  password authentication failed for user "orders"', "postgres-auth-failed", "P2"),
    (
        PG + 'FATAL:  no pg_hba.conf entry for host "10.0.3.7", user "app", database "shop", no encryption',
        "postgres-auth-failed",
        "P2",
    ),
    (
        event("Failed", 'Failed to pull image "registry.local/shop/api:v2": rpc error: code = NotFound'),
        "image-pull-error",
        "P2",
    ),
    (event("Failed", "Error: ImagePullBackOff"), "image-pull-error", "P2"),
    (
        event(
            "Unhealthy",
            'Readiness probe failed: Get "http://10.0.0.5:8080/ready": dial tcp 10.0.0.5:8080: '
            "connect: connection refused",
        ),
        "probe-failed",
        "P2",
    ),
    (
        event(
            "FailedScheduling",
            "0/9 nodes are available: 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
            "6 Insufficient cpu. preemption: 0/9 nodes are available: 3 Preemption is not helpful for scheduling, "
            "6 No preemption victims found for incoming pod.",
        ),
        "failed-scheduling",
        "P2",
    ),
    (
        event(
            "FailedAttachVolume",
            'Multi-Attach error for volume "pvc-9dbdb7f1-850d-4553-97cf-90f88ead73ca" Volume is already exclusively '
            "attached to one node and can't be attached to another",
        ),
        "multi-attach",
        "P2",
    ),
    (
        event(
            "FailedMount",
            "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data kube-api-access-x]: "
            "timed out waiting for the condition",
        ),
        "failed-mount",
        "P2",
    ),
    (
        event("FailedMount", 'MountVolume.SetUp failed for volume "config" : configmap "shop-config" not found'),
        "failed-mount",
        "P2",
    ),
    (
        event("BackoffLimitExceeded", "Job has reached the specified backoff limit", obj="Job"),
        "job-backoff-limit",
        "P2",
    ),
    (
        event("NodeNotReady", "Node worker-3 status is now: NodeNotReady", kind="Normal", obj="Node"),
        "node-not-ready",
        "P1",
    ),
    (
        event("NodeHasDiskPressure", "Node worker-3 status is now: NodeHasDiskPressure", kind="Normal", obj="Node"),
        "node-pressure",
        "P2",
    ),
    (
        "E1201 10:00:02.000001       1 leaderelection.go:332] error retrieving resource lock "
        'kube-system/kube-controller-manager: Get "https://10.0.0.1:6443/apis/coordination.k8s.io/v1/namespaces/'
        'kube-system/leases/kube-controller-manager?timeout=5s": context deadline exceeded',
        "timeout",
        "P2",
    ),
    (
        "E1201 10:00:03.000001       1 leaderelection.go:308] failed to renew lease "
        "kube-system/kube-controller-manager: timed out waiting for the condition",
        "leader-lease-renew-failed",
        "P2",
    ),
    ("F1201 10:00:03.100001       1 controllermanager.go:294] leaderelection lost", "leader-election-lost", "P1"),
    (
        event("Evicted", "The node was low on resource: memory. Threshold quantity: 100Mi, available: 88Mi."),
        "pod-evicted",
        "P2",
    ),
    (
        event(
            "FailedCreate",
            'Error creating: pods "report-1-x7k2p" is forbidden: exceeded quota: batch-quota, requested: '
            "limits.memory=2Gi, used: limits.memory=7Gi, limited: limits.memory=8Gi",
            obj="ReplicaSet",
        ),
        "quota-exceeded",
        "P2",
    ),
    (
        'level=error ts=2026-12-01T10:00:00Z caller=scrape.go:1 msg="scrape failed" err="Get '
        '\\"https://10.0.0.9:9100/metrics\\": x509: certificate has expired or is not yet valid: current time '
        '2026-12-01T10:00:00Z is after 2026-11-30T00:00:00Z"',
        "certificate-expired",
        "P1",
    ),
    (
        'I1201 10:00:00.000001       1 certificate_manager.go:356] "Certificate will expire in 71h59m0s; '
        'rotating" logger="kubernetes.io/kubelet-serving"',
        "certificate-expiring",
        "P3",
    ),
    ("2026/12/01 10:00:00 http: TLS handshake error from 10.0.0.1:51234: EOF", "tls-handshake-noise", "P4"),
    (
        "2026/12/01 10:00:00 [crit] 29#29: *51 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key "
        "share) while SSL handshaking, client: 10.0.0.1, server: 0.0.0.0:443",
        "tls-handshake-noise",
        "P4",
    ),
    ("2026/12/01 10:00:00 http: TLS handshake error from 10.0.0.1:51234: tls: bad certificate", "tls-error", "P2"),
    (
        "[ERROR] plugin/errors: 2 api.shop.svc.cluster.local. A: read udp 10.0.0.3:5353->10.0.0.2:53: i/o timeout",
        "timeout",
        "P2",
    ),
    (
        '[INFO] 10.0.0.4:40112 - 5 "AAAA IN api.github.com.shop.svc.cluster.local. udp 62 false 512" NXDOMAIN '
        "qr,aa,rd 155 0.0001s",
        "default",
        "P4",
    ),
    ("Error: getaddrinfo ENOTFOUND recommendations.shop.svc.cluster.local", "dns-error", "P2"),
    (PG + "ERROR:  deadlock detected", "db-transaction-conflict", "P3"),
    (
        PG + "ERROR:  could not serialize access due to concurrent update",
        "db-transaction-conflict",
        "P3",
    ),
    (PG + 'ERROR:  relation "orders" does not exist', "error-level", "P3"),
    ("sql: connection is already closed: database error", "database-error", "P2"),
    (
        event(
            "FailedCreate",
            'pods "x" is forbidden: User "system:serviceaccount:ci:runner" cannot create resource '
            '"pods" in API group "" in the namespace "prod"',
        ),
        "permission-denied",
        "P2",
    ),
    (
        "2026/12/01 10:00:00 [error] 31#31: *7 connect() failed (111: Connection refused) while connecting to "
        'upstream, client: 10.0.0.1, server: shop, request: "GET /api HTTP/1.1", upstream: "http://10.0.0.7:8080/api"',
        "connection-refused",
        "P2",
    ),
    (
        "E1201 10:00:00.000001       1 reflector.go:147] Failed to watch *v1.Pod: failed to list *v1.Pod: Get "
        '"https://10.96.0.1:443/api/v1/pods?limit=500&resourceVersion=0": dial tcp 10.96.0.1:443: connect: '
        "connection refused",
        "connection-refused",
        "P2",
    ),
    # the same refusal logged as a warning: client-go retries (a retry, P3)
    (
        "W1201 10:00:00.000001       1 reflector.go:535] failed to list *v1.Pod: Get "
        '"https://10.96.0.1:443/api/v1/pods?limit=500&resourceVersion=0": dial tcp 10.96.0.1:443: connect: '
        "connection refused",
        "dependency-warning",
        "P3",
    ),
    ('{"level":"error","msg":"request failed","error":"context deadline exceeded"}', "timeout", "P2"),
    ('{"level":"warn","msg":"retrying","error":"context deadline exceeded"}', "timeout-warning", "P3"),
    (PG + "ERROR:  canceling statement due to statement timeout", "statement-timeout", "P3"),
    (
        "ts=2026-12-01T10:00:00Z caller=notifier.go:530 level=error component=notifier "
        'alertmanager=http://10.0.0.8:9093/api/v2/alerts count=3 msg="Error sending alert" '
        'err="Post \\"http://10.0.0.8:9093/api/v2/alerts\\": context deadline exceeded"',
        "alert-delivery-failed",
        "P1",
    ),
    ("1:M 01 Dec 2026 10:00:00.123 # Background saving error", "redis-persistence-error", "P2"),
    (
        "1:M 01 Dec 2026 10:00:00.123 # Can't save in background: fork: Cannot allocate memory",
        "redis-persistence-error",
        "P2",
    ),
    ("1:S 01 Dec 2026 10:00:00.123 * Connection with master lost.", "replica-or-broker-lost", "P3"),
    (
        "2026-12-01T10:00:00.123Z  WARN 1 --- [ad | producer-1] org.apache.kafka.clients.NetworkClient   : "
        "[Producer clientId=producer-1] Connection to node 1 (kafka-1.kafka-headless/10.0.0.9:9092) could not be "
        "established. Broker may not be available.",
        "replica-or-broker-lost",
        "P3",
    ),
    (
        "2026-12-01T10:00:00.123Z ERROR 1 --- [nio-8080-exec-1] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : "
        "Servlet.service() threw exception\norg.springframework.jdbc.CannotGetJdbcConnectionException: Failed to "
        "obtain JDBC Connection\n\tat org.springframework.jdbc.datasource.DataSourceUtils.getConnection(DataSourceUtils.java:84)",
        "java-db-unavailable",
        "P1",
    ),
    (
        "/app/node_modules/ioredis/built/redis/event_handler.js:182\n        self.flushQueue(new Error());\n"
        "                        ^\n\nMaxRetriesPerRequestError: Reached the max retries per request limit (which is 20).\n"
        "    at Socket.<anonymous> (/app/node_modules/ioredis/built/redis/event_handler.js:182:37)\n\nNode.js v20.11.1",
        "node-uncaught-exception",
        "P1",
    ),
    (
        '{"level":"warn","ts":"2026-12-01T10:00:00.123456Z","caller":"etcdserver/raft.go:416","msg":"leader failed to '
        'send out heartbeat on time; took too long, leader is overloaded likely from slow disk","heartbeat-interval":"100ms"}',
        "etcd-heartbeat",
        "P2",
    ),
    (
        '{"level":"warn","ts":"2026-12-01T10:00:00.123456Z","caller":"etcdserver/util.go:170","msg":"apply request '
        'took too long","took":"212.5ms","expected-duration":"100ms"}',
        "etcd-slow",
        "P3",
    ),
    (
        'W1201 10:00:00.000001       7 controller.go:1214] Service "shop/web" does not have any active Endpoint.',
        "no-endpoints",
        "P2",
    ),
    (
        '[2026-12-01T10:00:00.123Z] "GET /api/cart HTTP/1.1" 503 UF upstream_reset_before_response_started'
        '{connection_failure} - "-" 0 91 3 - "-" "curl/8.5.0" "5f1c6c1e-0000-4000-8000-000000000001" '
        '"cart.shop.svc.cluster.local:8080" "10.0.0.7:8080"',
        "envoy-upstream-failure",
        "P2",
    ),
    (
        '10.0.0.1 - - [01/Dec/2026:10:00:00 +0000] "GET /cart HTTP/2.0" 502 150 "-" "Mozilla/5.0" 230 0.003 '
        "[shop-web-8080] [] 10.0.0.7:8080 0 0.003 502 0f0c",
        "http-5xx",
        "P3",
    ),
    (
        event(
            "FailedGetResourceMetric",
            "failed to get cpu utilization: unable to get metrics for resource cpu: "
            "no metrics returned from resource metrics API",
            obj="HorizontalPodAutoscaler",
        ),
        "hpa-metrics",
        "P3",
    ),
    (
        'E1201 10:00:00.000001       1 authentication.go:73] "Unable to authenticate the request" '
        'err="[invalid bearer token, service account token has expired]"',
        "api-auth-failed",
        "P3",
    ),
    (event("BackOff", 'Back-off pulling image "registry.local/shop/api:v2"'), "image-pull-error", "P2"),
    (
        "2026/12/01 10:00:00 [error] 31#31: *9 upstream prematurely closed connection while reading response "
        'header from upstream, client: 10.0.0.1, server: shop, request: "GET / HTTP/2.0", upstream: "http://10.0.0.7:80/"',
        "connection-refused",
        "P2",
    ),
    # the level decides when no class does: error is P3 (one unit of work failed), a level word
    # that is not the line's level is P4
    ("ERROR something broke", "error-level", "P3"),
    ('I1201 10:00:00.000001       1 sync.go:88] "Error count reset" controller="gc"', "generic-error", "P4"),
    # --- etcd (etcd-io/etcd v3.5 and etcd-io/raft)
    (
        '{"level":"warn","ts":"2026-12-01T10:00:00.123456Z","caller":"etcdhttp/metrics.go:173",'
        '"msg":"serving /health false; no leader"}',
        "etcd-unavailable",
        "P1",
    ),
    (
        '{"level":"warn","ts":"2026-12-01T10:00:00.123456Z","caller":"etcdserver/server.go:2082","msg":"alarm raised",'
        '"alarm":"NOSPACE","from":"8e9e05c52164694d","error":"etcdserver: mvcc: database space exceeded"}',
        "etcd-unavailable",
        "P1",
    ),
    (
        '{"level":"info","ts":"2026-12-01T10:00:00.123456Z","logger":"raft","caller":"etcdserver/zap_raft.go:77",'
        '"msg":"raft.node: 8e9e05c52164694d lost leader 91bc3c398fb3c146 at term 5"}',
        "etcd-heartbeat",
        "P2",
    ),
    (
        '{"level":"warn","ts":"2026-12-01T10:00:00.123456Z","caller":"wal/wal.go:805","msg":"slow fdatasync",'
        '"took":"1.52s","expected-duration":"1s"}',
        "etcd-heartbeat",
        "P2",
    ),
    # --- CoreDNS (coredns/coredns plugin/loop, plugin/ready, plugin/forward, plugin/health)
    (
        '[FATAL] plugin/loop: Loop (127.0.0.1:55953 -> :53) detected for zone ".", see '
        'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO 4547991504243258144.3688648895315093531."',
        "cluster-component-down",
        "P1",
    ),
    ('[INFO] plugin/ready: Still waiting on: "kubernetes"', "not-ready-or-throttled", "P3"),
    ("[ERROR] plugin/errors: 2 api.example.com. A: no healthy proxies", "no-endpoints", "P2"),
    (
        '[WARNING] plugin/health: Local health request to "http://:8080/health" took more than 1s: 1.402s',
        "degraded",
        "P3",
    ),
    # --- kubelet, kube-proxy, API server
    (
        'E1201 10:00:00.000001    2201 kubelet.go:2355] "Skipping pod synchronization" err="PLEG is not healthy: '
        'pleg was last seen active 3m5.1s ago; threshold is 3m0s"',
        "cluster-component-down",
        "P1",
    ),
    (
        'E1201 10:00:00.000001       1 proxier.go:1535] "Failed to execute iptables-restore" err="exit status 1"',
        "service-proxy-failed",
        "P2",
    ),
    (
        "W1201 10:00:00.000001       1 dispatcher.go:205] Failed calling webhook, failing open kyverno.svc: "
        'failed calling webhook "kyverno.svc": failed to call webhook: Post "https://kyverno-svc.kyverno.svc:443/'
        'validate?timeout=10s": context deadline exceeded',
        "admission-webhook-failed",
        "P2",
    ),
    (
        'E1201 10:00:00.000001       1 replica_set.go:561] sync "shop/web-7d4b9c8f6d" failed with Operation cannot '
        'be fulfilled on replicasets.apps "web-7d4b9c8f6d": the object has been modified; please apply your changes '
        "to the latest version and try again",
        "optimistic-lock-conflict",
        "P4",
    ),
    (
        "W1201 10:00:00.000001       1 reflector.go:456] watch of *v1.Pod ended with: an error on the server "
        '("unable to decode an event from the watch stream: context canceled") has prevented the request',
        "client-went-away",
        "P4",
    ),
    # --- Kubernetes events by their type and reason
    (
        event(
            "FailedPostStartHook",
            'Exec lifecycle hook ([/bin/sh -c /warm.sh]) for Container "web" in Pod "web-7d4b9c8f6d-xk2lp_shop(1c2d)"'
            " failed - error: command '/bin/sh -c /warm.sh' exited with 1: , message: \"\"",
        ),
        "failed-warning-event",
        "P2",
    ),
    (
        event("Rebooted", "Node worker-3 has been rebooted, boot id: 3f9c0d2e", obj="Node"),
        "warning-event",
        "P3",
    ),
    (event("Scheduled", "Successfully assigned shop/web-7d4b9c8f6d-xk2lp to worker-3", kind="Normal"), "default", "P4"),
    # --- cert-manager (pkg/controller/acmechallenges, acmeorders, certificaterequests)
    (
        'E1201 10:00:00.000001       1 sync.go:334] "Failed to create Order" err="429 urn:ietf:params:acme:error:'
        'rateLimited: Error creating new order" logger="cert-manager.controller.orders"',
        "certificate-issuance-failed",
        "P2",
    ),
    (
        'E1201 10:00:00.000001       1 controller.go:162] "re-queuing item due to error processing" err="secret '
        '\\"ca-key-pair\\" not found" logger="cert-manager.controller"',
        "cert-manager-failing",
        "P2",
    ),
    # --- PostgreSQL, Redis, Python, Java, nginx, Envoy, Prometheus
    (PG + "LOG:  could not receive data from client: Connection reset by peer", "client-went-away", "P4"),
    (
        PG + 'ERROR:  duplicate key value violates unique constraint "orders_pkey"',
        "db-constraint-violation",
        "P4",
    ),
    (
        PG
        + "ERROR:  out of memory\n"
        + PG
        + 'DETAIL:  Failed on request of size 1048576 in memory context "ExecutorState".',
        "out-of-memory",
        "P2",
    ),
    (
        "1:M 01 Dec 2026 10:00:00.123 # WARNING overcommit_memory is set to 0! Background save may fail under low "
        "memory condition. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf",
        "startup-advice",
        "P4",
    ),
    (
        "2026-12-01 10:00:00,123 ERROR [invoicer.tasks] charge failed\nTraceback (most recent call last):\n"
        "  File \"/app/tasks.py\", line 9, in charge\nrequests.exceptions.SSLError: HTTPSConnectionPool(host='api.x.com',"
        " port=443): Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
        "CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)')))",
        "tls-verify-failed",
        "P2",
    ),
    (
        "2026-12-01 10:00:00,123 WARNING [urllib3.connectionpool] Retrying (Retry(total=2, connect=None)) after "
        "connection broken by 'NewConnectionError(\"Failed to establish a new connection: [Errno 111] Connection "
        "refused\")': /v1/charges",
        "dependency-warning",
        "P3",
    ),
    (
        "2026-12-01 10:00:00,123 WARNING [notifier.mailer] could not render template receipt; sending plain text",
        "warning-failure",
        "P3",
    ),
    (
        '2026/12/01 10:00:00 [error] 31#31: *7 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file '
        'or directory), client: 10.0.0.1, server: shop, request: "GET /favicon.ico HTTP/1.1"',
        "client-went-away",
        "P4",
    ),
    (
        '[2026-12-01T10:00:00.123Z] "GET /api/cart HTTP/1.1" 500 - via_upstream - "-" 0 91 3 2 "-" "curl/8.5.0" '
        '"5f1c6c1e" "cart.shop.svc.cluster.local:8080" "10.0.0.7:8080"',
        "http-5xx",
        "P3",
    ),
    (
        'ts=2026-12-01T10:00:00Z caller=group.go:551 level=warn component="rule manager" msg="Evaluating rule failed" '
        'err="found duplicate series for the match group"',
        "degraded",
        "P3",
    ),
]


@pytest.mark.parametrize(
    ("line", "rule", "priority"),
    [pytest.param(line, rule, prio, id=f"{rule}-{i}") for i, (line, rule, prio) in enumerate(LIBRARY)],
)
def test_library_on_real_messages(line: str, rule: str, priority: str) -> None:
    message, level = parse_message(line)
    got = SHIPPED.classify(line, message=message, level=level)
    assert (got.name, got.priority.value) == (rule, priority)


# What must NOT be taken for what it mentions in passing: (line, the rule it must not get, priority)
INCIDENTAL = [
    # "?timeout=10s" is a query parameter client-go puts in every URL; this is a plain watch error
    (
        "E1201 10:00:00.000001       1 reflector.go:147] Failed to watch *v1.ConfigMap: Get "
        '"https://10.96.0.1:443/api/v1/configmaps?allowWatchBookmarks=true&timeout=10s&watch=true": '
        "unexpected EOF",
        "timeout",
        "P4",
    ),
    # a client that hung up: not a timeout
    ('{"level":"info","msg":"request aborted","error":"context canceled"}', "timeout", "P4"),
    ("2026/12/01 10:00:00 http: proxy error: context canceled", "timeout", "P4"),
    # load-balancer health checks: not a TLS problem
    ("2026/12/01 10:00:00 http: TLS handshake error from 10.0.0.1:5000: EOF", "tls-error", "P4"),
    # a redis BGSAVE fork failing is not a killed container
    ("1:M 01 Dec 2026 10:00:00.123 # Can't save in background: fork: Cannot allocate memory", "oom-killed", "P2"),
    # a WARN-level SQL notice is not a database error
    (
        '{"level":"warn","msg":"sql: notice from server: relation \\"t\\" already exists, error ignored"}',
        "database-error",
        "P4",
    ),
    (PG + 'NOTICE:  relation "orders" already exists, skipping', "database-error", "P4"),
]


@pytest.mark.parametrize(
    ("line", "not_rule", "priority"),
    [pytest.param(*row, id=f"not-{row[1]}-{i}") for i, row in enumerate(INCIDENTAL)],
)
def test_incidental_words_do_not_decide(line: str, not_rule: str, priority: str) -> None:
    message, level = parse_message(line)
    got = SHIPPED.classify(line, message=message, level=level)
    assert got.name != not_rule and got.priority.value == priority, got.name


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('Failed to pull image "x": not found', id="pull-capital"),
        pytest.param('failed to pull image "x": not found', id="pull-lower"),
        pytest.param("dial tcp 10.0.0.1:80: Connection refused", id="refused-capital"),
        pytest.param("connect() failed (111: Connection refused)", id="refused-nginx"),
    ],
)
def test_case_insensitive_where_software_varies(line: str) -> None:
    assert SHIPPED.classify(line).name in ("image-pull-error", "connection-refused")


def test_every_shipped_rule_is_exercised_and_names_its_source() -> None:
    tested = {rule for _line, rule, _p in LIBRARY}
    assert {r.name for r in SHIPPED.rules} - tested == set()
    text = (ROOT / "config" / "rules.yaml").read_text(encoding="utf-8")
    chunks = text.split("\n  - name: ")
    for before, after in zip(chunks[:-1], chunks[1:], strict=True):
        name = after.split("\n", 1)[0]
        if name == "generic-error":
            continue  # the catch-all: no one source
        assert before.rstrip().splitlines()[-1].strip().startswith("#"), f"rule {name} names no source"
