"""Writes ``logs.jsonl``: one hour of realistic Kubernetes error logs for ``kube-sentinel demo``.

Run ``python -m sentinel.demo.generate`` to regenerate (deterministic: fixed seed). Lines are in
the ``{ts, labels, line}`` form the file source reads; the demo replays them on the wall clock.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

HOUR = 3600
T0 = 1_795_800_000  # any fixed start; the demo shifts everything to "now"

PODS = {
    ("shop", "checkout"): ["checkout-7d4b9c8f6d-xk2lp", "checkout-7d4b9c8f6d-q9wzt", "checkout-7d4b9c8f6d-m2hfr"],
    ("shop", "cart"): ["cart-5f6c7d8b9-xb4cd", "cart-5f6c7d8b9-pl2wk"],
    ("shop", "frontend"): ["frontend-6b8d9f7c5-zz5bb", "frontend-6b8d9f7c5-ww2bb", "frontend-6b8d9f7c5-xx4cc"],
    ("payments", "payments-api"): ["payments-api-84c6d9b7f-r7t2n", "payments-api-84c6d9b7f-k8s9d"],
    ("payments", "ledger"): ["ledger-0", "ledger-1"],
    ("data", "postgres"): ["postgres-0", "postgres-1"],
    ("data", "kafka"): ["kafka-0", "kafka-1", "kafka-2"],
    ("batch", "nightly-report"): ["nightly-report-29012345-8xk2d"],
    ("auth", "auth-service"): ["auth-service-59d8c7b6f4-w2x4r"],
    ("search", "search-indexer"): ["search-indexer-6c7d8f9f2-h5j6k"],
    ("kube-system", "coredns"): ["coredns-5d78c9869d-4lq7x", "coredns-5d78c9869d-9sxvz"],
    ("monitoring", "prometheus"): ["prometheus-0"],
}


def ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"


def messages(rng: random.Random, ns: str, wl: str, pod: str) -> list[tuple[float, str, str]]:
    """(weight, container, line) choices for one workload."""
    rid = uuid.UUID(int=rng.getrandbits(128))
    ms = rng.randint(120, 9000)
    order = rng.randint(100000, 999999)
    common: dict[str, list[tuple[float, str, str]]] = {
        "checkout": [
            (
                6,
                "checkout",
                json.dumps(
                    {
                        "level": "error",
                        "ts": "x",
                        "msg": "failed to reserve inventory",
                        "error": f"rpc error: code = Unavailable desc = connection error: dial tcp {ip(rng)}:50051: connect: connection refused",
                        "order_id": order,
                    }
                ),
            ),
            (
                3,
                "checkout",
                json.dumps({"level": "error", "msg": f"payment call timed out after {ms}ms", "request_id": str(rid)}),
            ),
            (
                1,
                "checkout",
                f"panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=0x1 addr=0x{rng.randint(16, 255):x} pc=0x{rng.getrandbits(24):x}]",
            ),
            (2, "events", f"Back-off restarting failed container checkout in pod {pod}_shop({rid})"),
        ],
        "cart": [
            (
                5,
                "cart",
                f'level=error ts=2026-11-28T10:00:00Z caller=store.go:{rng.randint(40, 400)} msg="redis error" err="dial tcp {ip(rng)}:6379: i/o timeout"',
            ),
            (2, "cart", f'level=error msg="context deadline exceeded" op=GetCart user_id={rng.randint(1000, 99999)}'),
        ],
        "frontend": [
            (
                4,
                "frontend",
                f"{rng.choice(['GET', 'POST'])} /api/products/{rng.randint(1, 5000)} 502 upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            ),
            (2, "frontend", f"Error: getaddrinfo ENOTFOUND recommendations.shop.svc.cluster.local (request {rid})"),
            (
                1,
                "events",
                f'Readiness probe failed: Get "http://{ip(rng)}:8080/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
            ),
        ],
        "payments-api": [
            (
                3,
                "payments-api",
                json.dumps(
                    {
                        "severity": "ERROR",
                        "message": f"x509: certificate has expired or is not yet valid: current time 2026-11-28T10:{rng.randint(10, 59)}:00Z is after 2026-11-27T23:59:59Z",
                        "upstream": "bank-gateway.example.com:443",
                    }
                ),
            ),
            (
                2,
                "payments-api",
                json.dumps(
                    {
                        "severity": "ERROR",
                        "message": f"database error: pq: remaining connection slots are reserved for non-replication superuser connections (pool={rng.randint(20, 50)})",
                    }
                ),
            ),
            (1, "events", f"Liveness probe failed: HTTP probe failed with statuscode: 500 (pod {pod})"),
        ],
        "ledger": [
            (
                2,
                "ledger",
                f"ERROR [ledger] could not serialize access due to concurrent update (txid {rng.randint(10**6, 10**7)})",
            ),
            (1, "events", f"OOMKilled: container ledger in pod {pod} exceeded memory limit 512Mi"),
        ],
        "postgres": [
            (
                3,
                "postgres",
                f"2026-11-28 10:{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(100, 999)} UTC [{rng.randint(100, 9999)}] FATAL:  sorry, too many clients already",
            ),
            (
                1,
                "postgres",
                f"2026-11-28 10:{rng.randint(10, 59)}:{rng.randint(10, 59)}.{rng.randint(100, 999)} UTC [{rng.randint(100, 9999)}] ERROR:  deadlock detected",
            ),
        ],
        "kafka": [
            (
                2,
                "kafka",
                f"[2026-11-28 10:00:00,{rng.randint(100, 999)}] ERROR [ReplicaFetcher replicaId={rng.randint(0, 2)}, leaderId={rng.randint(0, 2)}, fetcherId=0] Error for partition orders-{rng.randint(0, 11)} at offset {rng.randint(10**5, 10**7)} (kafka.server.ReplicaFetcherThread)",
            ),
        ],
        "nightly-report": [
            (
                2,
                "report",
                f'Traceback (most recent call last): psycopg2.OperationalError: could not connect to server: Connection refused Is the server running on host "{ip(rng)}" and accepting TCP/IP connections on port 5432?',
            ),
            (
                1,
                "events",
                f'Error: failed to pull image "registry.example.com/reports:v{rng.randint(1, 9)}.{rng.randint(0, 9)}": manifest unknown',
            ),
            (
                1,
                "events",
                f'pods "{pod}" is forbidden: exceeded quota: batch-quota, requested: limits.memory=2Gi, used: limits.memory=7Gi, limited: limits.memory=8Gi',
            ),
        ],
        "auth-service": [
            (
                3,
                "auth",
                f'time="2026-11-28T10:00:00Z" level=error msg="token validation failed" err="oidc: id token issued by a different provider" client={rid}',
            ),
            (
                1,
                "auth",
                f'E1128 10:00:{rng.randint(10, 59)}.{rng.randint(100000, 999999)}       1 reflector.go:{rng.randint(100, 300)}] failed to list *v1.Secret: secrets is forbidden: User "system:serviceaccount:auth:auth-service" cannot list resource "secrets" in API group "" in the namespace "auth"',
            ),
        ],
        "search-indexer": [
            (
                2,
                "indexer",
                f"ERROR Failed to index batch {rng.randint(1, 9999)}: ElasticsearchException[Elasticsearch exception [type=es_rejected_execution_exception, reason=rejected execution of coordinating operation]]",
            ),
            (
                1,
                "events",
                f"The node was low on resource: memory. Threshold quantity: 100Mi, available: {rng.randint(10, 99)}Mi. Container indexer was using {rng.randint(900, 1500)}Mi. Pod evicted.",
            ),
        ],
        "coredns": [
            (
                2,
                "coredns",
                f"[ERROR] plugin/errors: 2 {rng.choice(['api', 'db', 'cache'])}.internal.example.com. A: read udp {ip(rng)}:{rng.randint(30000, 60000)}->{ip(rng)}:53: i/o timeout",
            ),
        ],
        "prometheus": [
            (
                1,
                "prometheus",
                f'ts=2026-11-28T10:00:00.000Z caller=scrape.go:{rng.randint(1000, 1500)} level=error component="scrape manager" msg="Scrape failed" err="Get \\"http://{ip(rng)}:9100/metrics\\": dial tcp {ip(rng)}:9100: connect: no route to host"',
            ),
        ],
    }
    return common[wl]


def generate(seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    rates = {  # lines per minute, roughly
        "checkout": 6,
        "cart": 4,
        "frontend": 5,
        "payments-api": 2,
        "ledger": 0.6,
        "postgres": 1.5,
        "kafka": 1,
        "nightly-report": 0.5,
        "auth-service": 1.5,
        "search-indexer": 0.8,
        "coredns": 1.2,
        "prometheus": 0.5,
    }
    for (ns, wl), pods in PODS.items():
        for minute in range(60):
            rate = rates[wl]
            if wl == "checkout" and minute >= 52:
                rate *= 8  # a burst near the end: escalates the group
            n = int(rate) + (1 if rng.random() < rate - int(rate) else 0)
            for _ in range(n):
                pod = rng.choice(pods)
                choices = messages(rng, ns, wl, pod)
                weights = [c[0] for c in choices]
                _w, container, line = rng.choices(choices, weights=weights)[0]
                ts = (T0 + minute * 60 + rng.random() * 60) * 1e9
                labels = {
                    "namespace": ns,
                    "pod": pod,
                    "container": container,
                    "app": wl,
                    "cluster": "demo",
                    "service_name": wl,
                }
                out.append({"ts": int(ts), "labels": labels, "line": line})
    out.sort(key=lambda o: int(str(o["ts"])))
    return out


def main() -> None:
    path = Path(__file__).with_name("logs.jsonl")
    rows = generate()
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    print(f"wrote {len(rows)} lines to {path}")  # noqa: T201


if __name__ == "__main__":
    main()
