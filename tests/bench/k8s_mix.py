"""A realistic Kubernetes error mix, served as Loki ``query_range`` bodies (the benchmark's input).

Deterministic (fixed seed). 25 namespaces x 4 workloads, each workload logging 20 of the ~45
message shapes below in one log format of its own (plain, JSON, logfmt, klog, nginx), from three
pods with ReplicaSet / StatefulSet names; ~2,000 (workload, container, message shape) combinations
in all, drawn with a Zipf-like skew (a few loud groups, a long tail). Every line carries varying
request ids, IPs, ports, durations, counters or uuids, as real error lines do; some repeat exactly.

:func:`pages` yields bodies shaped like Loki's answer to a forward ``query_range`` (see
``tests/fixtures/loki/query_range_errors_all_forward.json``): ``{"status": "success", "data":
{"resultType": "streams", "result": [{"stream": {labels}, "values": [[ts_ns, line], ...]}, ...],
"stats": {...}}}``, one stream per distinct label set, each stream's values in time order, at most
``page_size`` entries per body (Loki's default ``max_entries_limit_per_query`` is 5,000), pages in
time order across one hour.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

T0_NS = 1_795_800_000 * 1_000_000_000
HOUR_NS = 3600 * 1_000_000_000
SEED = 20240601
PAGE_SIZE = 5000

R = random.Random  # the generator passed to every shape

_HEX = "0123456789abcdef"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def _ip(r: R) -> str:
    return f"10.{r.randrange(4)}.{r.randrange(256)}.{r.randrange(2, 255)}"


def _hex(r: R, n: int) -> str:
    return "".join(r.choices(_HEX, k=n))


def _uuid(r: R) -> str:
    h = _hex(r, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ms(r: R) -> int:
    return r.randrange(5, 30000)


SVC = ["inventory", "payments", "orders", "users", "catalog", "shipping", "search", "auth", "ledger", "billing"]

# (name, fn(rng, workload) -> message). Each shape is a different logging statement.
SHAPES: list[tuple[str, Callable[[R, str], str]]] = [
    (
        "conn-refused",
        lambda r, w: f"failed to connect to postgres: dial tcp {_ip(r)}:5432: connect: connection refused",
    ),
    (
        "grpc-unavail",
        lambda r, w: (
            f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing dial tcp {_ip(r)}:50051: connect: connection refused"'
        ),
    ),
    ("ctx-deadline", lambda r, w: f"context deadline exceeded while calling {w} after {_ms(r)}ms"),
    ("redis-timeout", lambda r, w: f"redis error: dial tcp {_ip(r)}:6379: i/o timeout"),
    (
        "http-502",
        lambda r, w: (
            f"upstream request to /api/v1/items/{r.randrange(1, 99999)} returned 502 Bad Gateway after {_ms(r)}ms"
        ),
    ),
    (
        "nil-panic",
        lambda r, w: (
            f"panic: runtime error: invalid memory address or nil pointer dereference [signal SIGSEGV: segmentation violation code=0x1 addr=0x{_hex(r, 2)} pc=0x{_hex(r, 6)}]"
        ),
    ),
    ("oom", lambda r, w: f"OOMKilled: container {w} exceeded memory limit {r.choice([256, 512, 1024])}Mi"),
    (
        "crashloop",
        lambda r, w: (
            f"Back-off restarting failed container {w} in pod {w}-{_hex(r, 9)}-{''.join(r.choices(_SAFE, k=5))}"
        ),
    ),
    (
        "readiness",
        lambda r, w: (
            f'Readiness probe failed: Get "http://{_ip(r)}:8080/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
        ),
    ),
    ("liveness", lambda r, w: f"Liveness probe failed: HTTP probe failed with statuscode: {r.choice([500, 503])}"),
    (
        "x509",
        lambda r, w: (
            f"x509: certificate has expired or is not yet valid: current time 2026-06-01T10:{r.randrange(10, 60)}:{r.randrange(10, 60)}Z is after 2026-05-31T23:59:59Z"
        ),
    ),
    (
        "pg-slots",
        lambda r, w: (
            f"database error: pq: remaining connection slots are reserved for non-replication superuser connections (pool={r.randrange(20, 60)})"
        ),
    ),
    (
        "pg-deadlock",
        lambda r, w: (
            f"ERROR: deadlock detected on relation {r.randrange(16000, 17000)} of database {r.randrange(16000, 17000)}"
        ),
    ),
    (
        "serialize",
        lambda r, w: f"could not serialize access due to concurrent update (txid {r.randrange(10**6, 10**7)})",
    ),
    (
        "kafka-fetch",
        lambda r, w: (
            f"Error for partition orders-{r.randrange(12)} at offset {r.randrange(10**5, 10**7)} (kafka.server.ReplicaFetcherThread)"
        ),
    ),
    ("dns", lambda r, w: f"lookup {r.choice(SVC)}.{w}.svc.cluster.local on 10.96.0.10:53: no such host"),
    (
        "forbidden",
        lambda r, w: (
            f'secrets is forbidden: User "system:serviceaccount:{w}:{w}" cannot list resource "secrets" in API group "" in the namespace "{w}"'
        ),
    ),
    (
        "token",
        lambda r, w: f"token validation failed for client {_uuid(r)}: oidc: id token issued by a different provider",
    ),
    (
        "es-reject",
        lambda r, w: (
            f"Failed to index batch {r.randrange(1, 9999)}: rejected execution of coordinating operation [coordinating_and_primary_bytes={r.randrange(10**6, 10**8)}]"
        ),
    ),
    (
        "evicted",
        lambda r, w: (
            f"The node was low on resource: memory. Threshold quantity: 100Mi, available: {r.randrange(10, 99)}Mi. Pod evicted."
        ),
    ),
    (
        "quota",
        lambda r, w: (
            f"exceeded quota: compute-quota, requested: limits.memory={r.randrange(1, 4)}Gi, used: limits.memory={r.randrange(4, 8)}Gi, limited: limits.memory=8Gi"
        ),
    ),
    (
        "image-pull",
        lambda r, w: (
            f'Failed to pull image "registry.example.com/{w}:v1.{r.randrange(30)}.{r.randrange(10)}": rpc error: code = NotFound desc = manifest unknown'
        ),
    ),
    ("disk-full", lambda r, w: f"write /var/lib/data/segment-{r.randrange(10**6)}.log: no space left on device"),
    (
        "too-many-files",
        lambda r, w: (
            f"accept tcp [::]:{r.choice([8080, 9090])}: accept4: too many open files; retrying in {r.randrange(5, 1000)}ms"
        ),
    ),
    (
        "json-decode",
        lambda r, w: (
            f"failed to decode request body: invalid character '{r.choice('}]x<')}' looking for beginning of value at offset {r.randrange(1, 4096)}"
        ),
    ),
    (
        "s3-denied",
        lambda r, w: (
            f"AccessDenied: Access Denied status code: 403, request id: {_hex(r, 16).upper()}, host id: {_hex(r, 24)}"
        ),
    ),
    (
        "rate-limit",
        lambda r, w: (
            f"rate limit exceeded for tenant {r.randrange(1, 500)}: {r.randrange(100, 1000)} requests in the last minute"
        ),
    ),
    ("broken-pipe", lambda r, w: f"write tcp {_ip(r)}:8080->{_ip(r)}:{r.randrange(30000, 60000)}: write: broken pipe"),
    ("eof", lambda r, w: f"unexpected EOF reading response from {r.choice(SVC)} (request {_uuid(r)})"),
    ("lock-timeout", lambda r, w: f"Lock wait timeout exceeded; try restarting transaction (query took {_ms(r)}ms)"),
    (
        "mongo",
        lambda r, w: (
            f"mongodb error: server selection error: server selection timeout, current topology: {{ Type: ReplicaSetNoPrimary, Servers: [{{ Addr: mongo-{r.randrange(3)}:27017, Type: Unknown }}] }}"
        ),
    ),
    (
        "circuit",
        lambda r, w: f"circuit breaker 'downstream-{r.choice(SVC)}' is OPEN: {r.randrange(5, 50)} consecutive failures",
    ),
    (
        "retry-give-up",
        lambda r, w: (
            f"giving up after {r.randrange(3, 10)} attempts: last error: status 503 from http://{r.choice(SVC)}:8080/v2/charge"
        ),
    ),
    (
        "java-npe",
        lambda r, w: (
            f'Exception in thread "pool-{r.randrange(1, 9)}-thread-{r.randrange(1, 64)}" java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null'
        ),
    ),
    ("py-keyerror", lambda r, w: f"Unhandled exception in handler process_order: KeyError: 'sku_{r.randrange(10**5)}'"),
    (
        "grpc-deadline",
        lambda r, w: (
            f"rpc error: code = DeadlineExceeded desc = context deadline exceeded (method /{w}.v1.Service/Get, {_ms(r)}ms)"
        ),
    ),
    (
        "node-pressure",
        lambda r, w: f"Node ip-{_ip(r).replace('.', '-')}.ec2.internal status is now: NodeHasDiskPressure",
    ),
    (
        "etcd",
        lambda r, w: (
            f"etcdserver: request timed out, possibly due to previous leader failure (took {_ms(r)}ms, expected 100ms)"
        ),
    ),
    (
        "webhook",
        lambda r, w: (
            f'Internal error occurred: failed calling webhook "validate.{w}.example.com": Post "https://{w}-webhook.{w}.svc:443/validate?timeout=10s": context deadline exceeded'
        ),
    ),
    (
        "smtp",
        lambda r, w: (
            f"failed to send notification email to user {r.randrange(10**4, 10**6)}: 421 4.7.0 Try again later, closing connection"
        ),
    ),
    (
        "nginx-upstream",
        lambda r, w: (
            f'upstream timed out (110: Connection timed out) while reading response header from upstream, client: {_ip(r)}, server: _, request: "GET /api/{r.randrange(1000)} HTTP/1.1"'
        ),
    ),
    (
        "cache-miss",
        lambda r, w: (
            f"cache backend unavailable, serving stale data for key product:{r.randrange(10**6)} (age {r.randrange(60, 3600)}s)"
        ),
    ),
    (
        "schema",
        lambda r, w: (
            f"schema validation failed for event OrderCreated v{r.randrange(1, 5)}: field 'amount' must be >= 0, got -{r.randrange(1, 500)}"
        ),
    ),
    (
        "config",
        lambda r, w: "configuration reload failed: yaml: line 12: mapping values are not allowed in this context",
    ),
    (
        "leader",
        lambda r, w: (
            f"failed to renew lease {w}/{w}-leader: timed out waiting for the condition after {r.randrange(10, 60)}s"
        ),
    ),
]

FORMATS = ["plain", "json", "logfmt", "klog", "plain-ts"]


def _wrap(fmt: str, r: R, message: str, level: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                "level": level,
                "ts": "2026-06-01T10:00:00.000Z",
                "msg": message,
                "caller": f"handler/{r.choice(['http', 'grpc', 'worker'])}.go:{r.randrange(40, 400)}",
                "trace_id": _hex(r, 32),
            }
        )
    if fmt == "logfmt":
        return f'ts=2026-06-01T10:00:00.{r.randrange(1000):03d}Z level={level} caller=main.go:{r.randrange(40, 400)} msg="{message.replace(chr(34), chr(39))}"'
    if fmt == "klog":
        return f"E0601 10:00:{r.randrange(10, 60)}.{r.randrange(10**5, 10**6)}       1 controller.go:{r.randrange(100, 400)}] {message}"
    if fmt == "plain-ts":
        return f"2026-06-01T10:00:{r.randrange(10, 60)}.{r.randrange(100, 1000)}Z {level.upper()} {message}"
    return f"{level.upper()} {message}" if not message.startswith(("panic:", "Exception")) else message


@dataclass(frozen=True, slots=True)
class Combo:
    """One (workload, container, message shape): one expected group."""

    namespace: str
    workload: str
    container: str
    shape: int
    fmt: str
    level: str
    pods: tuple[str, ...]


def combos(seed: int = SEED) -> list[Combo]:
    rnd = random.Random(seed)
    out: list[Combo] = []
    for ni in range(25):
        ns = f"team-{ni:02d}"
        for wi in range(4):
            wl = f"{SVC[(ni + wi) % len(SVC)]}-{ni:02d}{wi}"
            fmt = FORMATS[(ni * 4 + wi) % len(FORMATS)]
            if wi == 3:  # StatefulSet pods
                pods = tuple(f"{wl}-{k}" for k in range(3))
            else:
                rs = "".join(rnd.choices(_SAFE, k=9))
                pods = tuple(f"{wl}-{rs}-{''.join(rnd.choices(_SAFE, k=5))}" for _ in range(3))
            for shape in rnd.sample(range(len(SHAPES)), 20):
                container = wl.split("-")[0] if shape % 7 else "istio-proxy"
                level = "fatal" if SHAPES[shape][0] in ("nil-panic", "oom") else "error"
                out.append(Combo(ns, wl, container, shape, fmt, level, pods))
    return out


def _cumulative(n: int, s: float = 0.9) -> list[float]:
    acc = 0.0
    out = []
    for rank in range(1, n + 1):
        acc += 1.0 / rank**s
        out.append(acc)
    return out


def pages(n_lines: int, *, page_size: int = PAGE_SIZE, seed: int = SEED, hour: int = 0) -> Iterator[bytes]:
    """``n_lines`` lines over one hour as Loki ``query_range`` bodies of at most ``page_size`` entries.

    ``hour`` > 0: a later hour of the same cluster (the same workloads, formats and loud groups,
    other draws), as the polls after the first one see it."""
    rnd = random.Random(seed)
    cs = combos(seed)
    order = list(range(len(cs)))
    rnd.shuffle(order)  # which combos are loud is random, not namespace order
    if hour:
        rnd = random.Random(f"{seed}/{hour}")
    cum = _cumulative(len(cs))
    step = HOUR_NS // max(1, n_lines)
    start = T0_NS + hour * HOUR_NS
    done = 0
    while done < n_lines:
        k = min(page_size, n_lines - done)
        picks = rnd.choices(order, cum_weights=cum, k=k)
        streams: dict[tuple[str, str, str], dict[str, object]] = {}
        for j, ci in enumerate(picks):
            c = cs[ci]
            ts = start + (done + j) * step + rnd.randrange(step or 1)
            pod = c.pods[rnd.randrange(3)]
            if rnd.random() < 0.3:  # an exact repeat of the shape with a fixed argument set
                r = random.Random(ci)
            else:
                r = rnd
            line = _wrap(c.fmt, r, SHAPES[c.shape][1](r, c.workload), c.level)
            sk = (pod, c.container, c.level)
            st = streams.get(sk)
            if st is None:
                st = {
                    "stream": {
                        "app": c.workload,
                        "cluster": "prod-eu-1",
                        "container": c.container,
                        "detected_level": c.level,
                        "namespace": c.namespace,
                        "node_name": f"ip-10-0-{zlib.crc32(pod.encode()) % 8}-{zlib.crc32(pod.encode()) % 200}.ec2.internal",
                        "pod": pod,
                        "service_name": c.workload,
                        "stream": "stderr",
                    },
                    "values": [],
                }
                streams[sk] = st
            st["values"].append([str(ts), line])  # type: ignore[attr-defined]
        body = {
            "status": "success",
            "data": {
                "resultType": "streams",
                "result": list(streams.values()),
                "stats": {
                    "summary": {
                        "totalEntriesReturned": k,
                        "totalLinesProcessed": k,
                        "execTime": 0.05,
                        "queueTime": 0.0001,
                        "subqueries": 0,
                        "splits": 0,
                        "shards": 1,
                    }
                },
            },
        }
        yield json.dumps(body, separators=(",", ":")).encode()
        done += k
