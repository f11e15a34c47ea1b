"""Seeded generator: templates (``tune.yaml`` / ``heldout.yaml``) -> labelled Loki-like entries.

    python -m tests.bench.k8s_corpus.generate --part tune --out /tmp/tune.jsonl [--lines 20000]

Each written line is ``{"ts": ns, "labels": {...}, "line": "..."}`` (what ``kube-sentinel analyze``
reads); ``--truth OUT.jsonl`` writes the labels of each line beside it (template, true group, SRE
priority). One entry is one occurrence: a multi-line entry (Go panic, Java ``Caused by:`` chain,
Python traceback) is one ``line`` with embedded newlines, as Loki stores it after a multiline stage.

How lines are drawn
-------------------
* A *group* is (template, workload): the workload that logs it, or, for Kubernetes events shipped
  by the event exporter, the workload of the event's ``involvedObject`` (the exporter only carries
  them). The true group key is ``namespace/workload/container/template-group``.
* Groups get line counts from a Zipf-like law (weight ``1 / rank**ZIPF_S``, ranks from a seeded hash),
  at least ``MIN_LINES`` each, summing exactly to the requested total.
* Every line draws its variables afresh (``${name}`` or ``${name:arg}`` in the template text):
  pod of the workload, timestamps in the format's own layout, IPs, ids, durations, and variables
  that look like words (hosts, HTTP methods and paths, DNS names, record types, users, threads).
* Timestamps are uniform over one hour from ``T0_NS``; lines are written in time order.

The same part, seed and line count always give byte-identical output (the smoke test checks it).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
PARTS: dict[str, tuple[str, int]] = {
    # part -> (template file, seed)
    "tune": ("tune.yaml", 20261201),
    "heldout": ("heldout.yaml", 77003311),  # never tune on this part
}
LINES = 20_000
T0_NS = 1_796_126_400 * 1_000_000_000  # 2026-12-01T12:00:00Z
SPAN_NS = 3600 * 1_000_000_000
ZIPF_S = 0.9
MIN_LINES = 4
PRIORITIES = ("P1", "P2", "P3", "P4")
KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "StaticPod", "Node")
REQUIRED = ("id", "family", "source", "priority", "why", "go_rule", "text")


class CorpusError(ValueError):
    """A template file is malformed: the message names the file, the template and the field."""


@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    kind: str
    container: str
    labels: dict[str, str]
    pods: tuple[str, ...]
    owner: str  # the top-level owner's name: the true workload identity


@dataclass(frozen=True)
class Template:
    id: str
    family: str
    group: str
    source: str
    priority: str
    why: str
    go_rules: tuple[str, ...]  # the Go tool's choice for every line is one of these (usually one)
    text: str
    fmt: str  # "text" or "json" (values are JSON-escaped inside a JSON line)
    emit: tuple[str, ...]
    involved: tuple[str, ...]
    container: str | None
    level: str | None
    kinds: tuple[str, ...]
    event: dict[str, str] | None  # a Kubernetes event: reason, type, component, kind (text = message)


@dataclass(frozen=True)
class Part:
    name: str
    path: Path
    seed: int
    workloads: dict[str, Workload]
    templates: list[Template]

    @property
    def families(self) -> set[str]:
        return {t.family for t in self.templates}


@dataclass(frozen=True)
class Line:
    ts_ns: int
    labels: dict[str, str]
    line: str
    template: str
    family: str
    truth: str
    priority: str


@dataclass
class _Ctx:
    rng: random.Random
    ts_ns: int
    pod: str
    workload: Workload
    obj: Workload | None
    obj_pod: str
    memo: dict[str, str] = field(default_factory=dict)


# --- pod names ----------------------------------------------------------------------------------

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand: no vowels


def _safe(r: random.Random, n: int) -> str:
    return "".join(r.choice(_SAFE) for _ in range(n))


def _pods(name: str, kind: str, spec: dict[str, Any], r: random.Random) -> tuple[str, ...]:
    if kind == "Deployment":  # two ReplicaSets (a rollout) x two pods
        hashes = [_safe(r, r.choice((9, 10))) for _ in range(2)]
        return tuple(f"{name}-{h}-{_safe(r, 5)}" for h in hashes for _ in range(2))
    if kind == "StatefulSet":
        return tuple(f"{name}-{i}" for i in range(int(spec.get("replicas", 3))))
    if kind == "DaemonSet":
        return tuple(f"{name}-{_safe(r, 5)}" for _ in range(3))
    if kind == "CronJob":  # Job name = CronJob name + scheduled time in minutes since the epoch
        first = T0_NS // 60_000_000_000 - 24 * 60
        return tuple(f"{name}-{first + 60 * i}-{_safe(r, 5)}" for i in range(4))
    if kind == "StaticPod":  # mirror pods: <component>-<node name>
        return tuple(f"{name}-{node}" for node in spec.get("nodes", ["node-1", "node-2", "node-3"]))
    if kind == "Node":
        return tuple(spec.get("nodes", ["node-1", "node-2", "node-3"]))
    raise AssertionError(kind)


# --- variables ----------------------------------------------------------------------------------

R = random.Random
_HEX = "0123456789abcdef"

HOSTS = ["shop.example.com", "api.example.com", "www.example.org", "checkout.example.com", "admin.internal.example.net"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
PATH_ROOTS = ["api/v1/orders", "api/v1/cart", "api/v2/users", "checkout", "catalog/items", "graphql", "static/js"]
PATH_LEAVES = ["", "items", "summary", "confirm", "search", "export", "avatar"]
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "okhttp/4.12.0",
    "Go-http-client/1.1",
    "python-requests/2.32.3",
    "kube-probe/1.28",
    "Prometheus/2.54.1",
]
DNS_NAMES = [
    "api.stripe.com.",
    "orders.shop.svc.cluster.local.",
    "redis-master.cache.svc.cluster.local.",
    "sqs.eu-west-1.amazonaws.com.",
    "login.microsoftonline.com.",
    "payments.billing.svc.cluster.local.",
]
QTYPES = ["A", "AAAA", "SRV", "MX", "TXT", "PTR"]
THREADS = [
    "main",
    "http-nio-8080-exec-3",
    "http-nio-8080-exec-17",
    "pool-3-thread-7",
    "kafka-producer-network-thread | producer-1",
    "scheduling-1",
    "HikariPool-1 housekeeper",
    "grpc-default-executor-2",
]
DB_USERS = ["app", "orders", "readonly", "metabase", "billing_rw", "replicator"]
DATABASES = ["orders", "billing", "app", "analytics"]
IMAGES = [
    "registry.example.com/shop/web:1.4.3",
    "ghcr.io/acme/checkout:v2.11.0",
    "docker.io/library/redis:7.2.5",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments:2024.12.01-3",
]
NODES = [
    "ip-10-0-12-34.eu-west-1.compute.internal",
    "ip-10-0-31-7.eu-west-1.compute.internal",
    "ip-10-0-47-201.eu-west-1.compute.internal",
    "worker-pool-a-6f3k",
    "worker-pool-b-9x2m",
]
TABLES = ["orders", "order_items", "payments", "users", "sessions", "invoices"]
TAINTS = [
    "{node-role.kubernetes.io/control-plane: }",
    "{node.kubernetes.io/unreachable: }",
    "{dedicated: gpu}",
    "{node.kubernetes.io/disk-pressure: }",
]
# Scheduler filter reasons (v1.28 plugins' ErrReason strings; see tune.yaml's sources)
REASONS = [
    "Insufficient cpu",
    "Insufficient memory",
    "node(s) didn't match Pod's node affinity/selector",
    "node(s) had volume node affinity conflict",
    "node(s) didn't match pod anti-affinity rules",
    "node(s) were unschedulable",
    "node(s) didn't match pod topology spread constraints",
    "node(s) didn't have free ports for the requested pod ports",
]
GO_FRAMES = [
    ("main.(*Server).handleOrder", "/app/internal/server/orders.go"),
    ("main.(*Worker).process", "/app/internal/worker/worker.go"),
    ("github.com/acme/shop/internal/store.(*Store).Get", "/app/internal/store/store.go"),
    ("net/http.HandlerFunc.ServeHTTP", "/usr/local/go/src/net/http/server.go"),
    ("net/http.(*ServeMux).ServeHTTP", "/usr/local/go/src/net/http/server.go"),
    ("net/http.serverHandler.ServeHTTP", "/usr/local/go/src/net/http/server.go"),
    ("net/http.(*conn).serve", "/usr/local/go/src/net/http/server.go"),
    ("github.com/go-chi/chi/v5.(*Mux).routeHTTP", "/go/pkg/mod/github.com/go-chi/chi/v5@v5.0.12/mux.go"),
]
JAVA_FRAMES = [
    "com.acme.orders.OrderService.placeOrder(OrderService.java:{n})",
    "com.acme.orders.web.OrderController.create(OrderController.java:{n})",
    "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:{n})",
    "jakarta.servlet.http.HttpServlet.service(HttpServlet.java:{n})",
    "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:{n})",
    "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:{n})",
    "org.springframework.jdbc.datasource.DataSourceUtils.fetchConnection(DataSourceUtils.java:{n})",
    "java.base/java.lang.Thread.run(Thread.java:{n})",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:{n})",
]
PY_FRAMES = [
    ('/app/worker/tasks.py", line {n}, in process_order', "    result = gateway.charge(order)"),
    ('/app/worker/gateway.py", line {n}, in charge', "    resp = self.session.post(url, json=payload, timeout=10)"),
    (
        '/usr/local/lib/python3.11/site-packages/requests/sessions.py", line {n}, in post',
        '    return self.request("POST", url, data=data, json=json, **kwargs)',
    ),
    (
        '/usr/local/lib/python3.11/site-packages/requests/adapters.py", line {n}, in send',
        "    raise ConnectionError(e, request=request)",
    ),
    ('/app/api/views.py", line {n}, in get_order', "    order = Order.objects.get(pk=order_id)"),
    (
        '/usr/local/lib/python3.11/site-packages/django/db/models/query.py", line {n}, in get',
        "    num = len(clone)",
    ),
]
NODE_FRAMES = [
    "at TCPConnectWrap.afterConnect [as oncomplete] (node:net:{n}:16)",
    "at Socket.<anonymous> (/app/node_modules/ioredis/built/redis/event_handler.js:{n}:25)",
    "at processTicksAndRejections (node:internal/process/task_queues:{n}:5)",
    "at async OrderController.create (/app/dist/controllers/order.js:{n}:19)",
    "at async /app/node_modules/express/lib/router/layer.js:{n}:5",
]


def _ip(r: R) -> str:
    return f"10.{r.choice((0, 244, 96))}.{r.randrange(256)}.{r.randrange(2, 255)}"


def _hexs(r: R, n: int) -> str:
    return "".join(r.choice(_HEX) for _ in range(n))


def _uuid(r: R) -> str:
    h = _hexs(r, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _dt(c: _Ctx) -> datetime:
    return datetime.fromtimestamp(c.ts_ns / 1e9, tz=UTC)


def _path(r: R) -> str:
    root = r.choice(PATH_ROOTS)
    leaf = r.choice(PATH_LEAVES)
    p = f"/{root}/{r.randrange(1, 99999)}" if r.random() < 0.5 else f"/{root}"
    if leaf:
        p += "/" + leaf
    if r.random() < 0.3:
        p += f"?page={r.randrange(1, 40)}&sort={r.choice(('asc', 'desc', 'price', 'name'))}"
    return p


def _go_dur(r: R) -> str:
    v = r.random()
    if v < 0.4:
        return f"{r.randrange(1, 999)}.{r.randrange(1000):03d}ms"
    if v < 0.8:
        return f"{r.randrange(1, 30)}.{r.randrange(10**6):06d}s"
    return f"{r.randrange(1, 5)}m{r.randrange(60)}.{r.randrange(1000):03d}s"


def _reasons(r: R, arg: str) -> str:
    """A v1.28 FitError message body: ``0/N nodes are available: <histogram>. preemption: ...``."""
    n_reasons = r.randrange(1, 4)
    picked = r.sample(REASONS, n_reasons - 1) if n_reasons > 1 else []
    counts: dict[str, int] = {}
    if r.random() < 0.6:
        counts[f"node(s) had untolerated taint {r.choice(TAINTS)}"] = r.randrange(1, 4)
    else:
        picked.append(r.choice(REASONS))
    for p in picked:
        counts[p] = r.randrange(1, 12)
    total = sum(counts.values())
    hist = ", ".join(sorted(f"{v} {k}" for k, v in counts.items()))
    msg = f"0/{total} nodes are available: {hist}."
    if arg != "nopreempt":
        helpless = r.randrange(0, total + 1)
        parts = []
        if helpless:
            parts.append(f"{helpless} Preemption is not helpful for scheduling")
        if total - helpless:
            parts.append(f"{total - helpless} No preemption victims found for incoming pod")
        msg += f" preemption: 0/{total} nodes are available: {', '.join(sorted(parts))}.."[:-1] + "."
    return msg


def _fixed(text: str, lo: int, hi: int) -> int:
    """A frame's line number (or code offset): fixed per frame within one build, as in real traces."""
    return lo + zlib.crc32(text.encode()) % (hi - lo)


def _go_trace(r: R, arg: str) -> str:
    gid = r.randrange(1, 5000)
    frames = r.sample(GO_FRAMES, r.randrange(3, 7))
    out = [f"goroutine {gid} [running]:"]
    for fn, file in frames:
        args = ", ".join(f"0x{_hexs(r, r.choice((6, 10)))}" for _ in range(r.randrange(0, 4)))
        out.append(f"{fn}({args})")
        out.append(f"\t{file}:{_fixed(fn, 20, 3000)} +0x{_fixed(file + fn, 16, 4096):x}")
    if arg == "more":
        out.append(f"created by net/http.(*Server).Serve in goroutine {r.randrange(1, 50)}")
        out.append(f"\t/usr/local/go/src/net/http/server.go:{r.randrange(3000, 3300)} +0x{_hexs(r, 3)}")
    return "\n".join(out)


def _java_frames(r: R, arg: str) -> str:
    frames = r.sample(JAVA_FRAMES, r.randrange(3, 8))
    lines = ["\tat " + f.replace("{n}", str(_fixed(f, 20, 2000))) for f in frames]
    if r.random() < 0.5:
        lines.append(f"\t... {r.randrange(10, 90)} common frames omitted")
    return "\n".join(lines)


def _py_frames(r: R, arg: str) -> str:
    frames = r.sample(PY_FRAMES, r.randrange(2, 5))
    out = []
    for head, code in frames:
        out.append('  File "' + head.replace("{n}", str(_fixed(head, 10, 900))))
        out.append(code)
    return "\n".join(out)


def _node_frames(r: R, arg: str) -> str:
    frames = r.sample(NODE_FRAMES, r.randrange(2, 5))
    return "\n".join("    " + f.replace("{n}", str(_fixed(f, 10, 1600))) for f in frames)


def _referrer(r: R, arg: str) -> str:
    """nginx appends ``, referrer: "..."`` only when the request had a Referer header."""
    if r.random() < 0.5:
        return ""
    return f', referrer: "https://{r.choice(HOSTS)}{r.choice(("/", "/cart", "/checkout", "/account/orders"))}"'


def _choice(r: R, arg: str) -> str:
    return r.choice(arg.split("|"))


def _int(r: R, arg: str) -> str:
    lo, _, hi = (arg or "1-1000").partition("-")
    return str(r.randrange(int(lo), int(hi) + 1))


VARS: dict[str, Callable[[_Ctx, str], str]] = {
    # stream / workload identity
    "pod": lambda c, a: c.pod,
    "ns": lambda c, a: c.workload.namespace,
    "container": lambda c, a: c.workload.container,
    "obj_pod": lambda c, a: c.obj_pod,
    "obj_ns": lambda c, a: c.obj.namespace if c.obj else "",
    "obj_owner": lambda c, a: c.obj.owner if c.obj else "",
    "obj_container": lambda c, a: c.obj.container if c.obj else "",
    "obj_job": lambda c, a: c.obj_pod.rsplit("-", 1)[0],
    "node": lambda c, a: c.rng.choice(NODES),
    # time, in each format's own layout
    "klog_ts": lambda c, a: _dt(c).strftime("%m%d %H:%M:%S.%f"),
    "iso": lambda c, a: _dt(c).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_dt(c).microsecond // 1000:03d}Z",
    "iso_us": lambda c, a: _dt(c).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    "iso_s": lambda c, a: _dt(c).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "nginx_ts": lambda c, a: _dt(c).strftime("%Y/%m/%d %H:%M:%S"),
    "clf_ts": lambda c, a: _dt(c).strftime("%d/%b/%Y:%H:%M:%S +0000"),
    "pg_ts": lambda c, a: _dt(c).strftime("%Y-%m-%d %H:%M:%S.") + f"{_dt(c).microsecond // 1000:03d} UTC",
    "redis_ts": lambda c, a: _dt(c).strftime("%d %b %Y %H:%M:%S.") + f"{_dt(c).microsecond // 1000:03d}",
    "py_ts": lambda c, a: _dt(c).strftime("%Y-%m-%d %H:%M:%S,") + f"{_dt(c).microsecond // 1000:03d}",
    "logback_ts": lambda c, a: _dt(c).strftime("%Y-%m-%d %H:%M:%S.") + f"{_dt(c).microsecond // 1000:03d}",
    "gunicorn_ts": lambda c, a: _dt(c).strftime("[%Y-%m-%d %H:%M:%S +0000]"),
    "epoch": lambda c, a: f"{c.ts_ns / 1e9:.6f}",
    "epoch_ms": lambda c, a: str(c.ts_ns // 1_000_000),
    "date_rfc1123": lambda c, a: _dt(c).strftime("%a, %d %b %Y %H:%M:%S UTC"),
    # numbers and ids
    "int": lambda c, a: _int(c.rng, a),
    "pid": lambda c, a: str(c.rng.randrange(30, 32000)),
    "ip": lambda c, a: _ip(c.rng),
    "port": lambda c, a: str(c.rng.randrange(1024, 65535)),
    "hex": lambda c, a: _hexs(c.rng, int(a or 8)),
    "uuid": lambda c, a: _uuid(c.rng),
    "safe": lambda c, a: _safe(c.rng, int(a or 5)),
    "ms": lambda c, a: str(c.rng.randrange(1, 30000)),
    "secs": lambda c, a: f"{c.rng.randrange(0, 60)}.{c.rng.randrange(1000):03d}",
    "go_dur": lambda c, a: _go_dur(c.rng),
    "bytes": lambda c, a: str(c.rng.randrange(0, 2_000_000)),
    "mem_ki": lambda c, a: f"{c.rng.randrange(10_000, 4_000_000)}Ki",
    "pvc": lambda c, a: "pvc-" + _uuid(c.rng),
    "sha": lambda c, a: _hexs(c.rng, 64),
    # variables that look like words
    "host": lambda c, a: c.rng.choice(HOSTS),
    "method": lambda c, a: c.rng.choice(METHODS),
    "path": lambda c, a: _path(c.rng),
    "ua": lambda c, a: c.rng.choice(UAS),
    "dns_name": lambda c, a: c.rng.choice(DNS_NAMES),
    "qtype": lambda c, a: c.rng.choice(QTYPES),
    "thread": lambda c, a: c.rng.choice(THREADS),
    "thread15": lambda c, a: f"{c.rng.choice(THREADS)[-15:]:>15}",  # logback %15.15t
    "db_user": lambda c, a: c.rng.choice(DB_USERS),
    "database": lambda c, a: c.rng.choice(DATABASES),
    "table": lambda c, a: c.rng.choice(TABLES),
    "image": lambda c, a: c.rng.choice(IMAGES),
    "choice": lambda c, a: _choice(c.rng, a),
    # structured variables of varying length
    "reasons": lambda c, a: _reasons(c.rng, a),
    "referrer": lambda c, a: _referrer(c.rng, a),
    "go_trace": lambda c, a: _go_trace(c.rng, a),
    "java_frames": lambda c, a: _java_frames(c.rng, a),
    "py_frames": lambda c, a: _py_frames(c.rng, a),
    "node_frames": lambda c, a: _node_frames(c.rng, a),
}

_VAR = re.compile(r"\$\{(\w+)(?::([^{}@]*))?(?:@(\w+))?\}")


def _render(t: Template, c: _Ctx) -> str:
    """Fill ``${name}``, ``${name:arg}``; ``${name@k}`` reuses one value under the memo key ``k``."""

    def sub(m: re.Match[str]) -> str:
        name, arg, memo = m.group(1), m.group(2) or "", m.group(3)
        if memo and memo in c.memo:
            value = c.memo[memo]
        else:
            value = VARS[name](c, arg)
            if memo:
                c.memo[memo] = value
        return json.dumps(value)[1:-1] if t.fmt == "json" else value

    text = _VAR.sub(sub, t.text)
    if t.event is None:
        return text
    return _event_json(t.event, text, c)


def _event_json(ev: dict[str, str], message: str, c: _Ctx) -> str:
    """A core/v1 Event as an event exporter prints it (one JSON object per line, stdout)."""
    r, obj = c.rng, c.obj
    assert obj is not None
    kind = ev.get("kind", "Pod")
    name = {
        "Pod": c.obj_pod,
        "Job": c.obj_pod.rsplit("-", 1)[0],
        "ReplicaSet": c.obj_pod.rsplit("-", 1)[0],
        "Node": c.obj_pod,
        "PersistentVolumeClaim": f"data-{c.obj_pod}",
    }.get(kind, obj.owner)
    namespace = "" if kind == "Node" else obj.namespace
    stamp = _dt(c).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, Any] = {"kind": kind, "name": name, "uid": _uuid(r)}
    if namespace:
        involved["namespace"] = namespace
    involved["apiVersion"] = {
        "Job": "batch/v1",
        "ReplicaSet": "apps/v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
    }.get(kind, "v1")
    involved["resourceVersion"] = str(r.randrange(10_000, 99_999_999))
    if kind == "Pod" and ev.get("field_path"):
        involved["fieldPath"] = f"spec.containers{{{obj.container}}}"
    event = {
        "metadata": {
            "name": f"{name}.{_hexs(r, 16)}",
            "namespace": namespace or "default",
            "uid": _uuid(r),
            "resourceVersion": str(r.randrange(10_000, 99_999_999)),
            "creationTimestamp": stamp,
        },
        "reason": ev["reason"],
        "message": message,
        "source": {"component": ev["component"], **({"host": r.choice(NODES)} if ev["component"] == "kubelet" else {})},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": r.randrange(1, 400),
        "type": ev["type"],
        "eventTime": None,
        "reportingComponent": ev["component"],
        "reportingInstance": "",
        "involvedObject": involved,
    }
    return json.dumps(event, separators=(",", ":"))


# --- loading ------------------------------------------------------------------------------------


def _fail(path: Path, where: str, msg: str) -> CorpusError:
    return CorpusError(f"{path.name}: {where}: {msg}")


def load_part(name: str, *, path: Path | None = None) -> Part:
    """Read and check one part's template file. Raises :class:`CorpusError` (one line) when bad."""
    if name not in PARTS and path is None:
        raise CorpusError(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
    file, seed = PARTS.get(name, ("", 0))
    p = path or HERE / file
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise _fail(p, "file", f"cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "file"
        raise _fail(p, at, f"invalid YAML: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(doc, dict) or "workloads" not in doc or "templates" not in doc:
        raise _fail(p, "file", "needs top-level 'workloads' and 'templates'")
    r = random.Random(zlib.crc32(p.name.encode()))
    workloads: dict[str, Workload] = {}
    for wname, spec in (doc["workloads"] or {}).items():
        where = f"workload {wname}"
        if not isinstance(spec, dict):
            raise _fail(p, where, "must be a mapping")
        kind = spec.get("kind", "Deployment")
        if kind not in KINDS:
            raise _fail(p, where, f"kind {kind!r} is not one of {', '.join(KINDS)}")
        if "namespace" not in spec:
            raise _fail(p, where, "missing field 'namespace'")
        pod_base = spec.get("pod_base", wname)
        workloads[wname] = Workload(
            name=wname,
            namespace=str(spec["namespace"]),
            kind=kind,
            container=str(spec.get("container", pod_base)),
            labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
            pods=_pods(pod_base, kind, spec, r),
            owner=str(spec.get("owner", pod_base)),
        )
    templates: list[Template] = []
    seen: set[str] = set()
    for i, spec in enumerate(doc["templates"] or []):
        tid = spec.get("id", f"#{i + 1}") if isinstance(spec, dict) else f"#{i + 1}"
        where = f"template {tid}"
        if not isinstance(spec, dict):
            raise _fail(p, where, "must be a mapping")
        for key in REQUIRED:
            if not spec.get(key):
                raise _fail(p, where, f"missing field {key!r}")
        if tid in seen:
            raise _fail(p, where, "duplicate id")
        seen.add(tid)
        if spec["priority"] not in PRIORITIES:
            raise _fail(p, where, f"priority {spec['priority']!r} is not one of P1..P4")
        emit = tuple(spec.get("emit") or ())
        involved = tuple(spec.get("involved") or ())
        if not emit:
            raise _fail(p, where, "missing field 'emit' (the workloads that log it)")
        for w in emit + involved:
            if w not in workloads:
                raise _fail(p, where, f"unknown workload {w!r}")
        for m in _VAR.finditer(spec["text"]):
            if m.group(1) not in VARS:
                raise _fail(p, where, f"unknown variable ${{{m.group(1)}}}")
        fmt = spec.get("format", "text")
        if fmt not in ("text", "json"):
            raise _fail(p, where, f"format {fmt!r} is not text or json")
        templates.append(
            Template(
                id=tid,
                family=str(spec["family"]),
                group=str(spec.get("group", tid)),
                source=str(spec["source"]),
                priority=str(spec["priority"]),
                why=str(spec["why"]),
                go_rules=tuple(str(x) for x in spec["go_rule"])
                if isinstance(spec["go_rule"], list)
                else (str(spec["go_rule"]),),
                text=str(spec["text"]).rstrip("\n") if fmt == "text" else str(spec["text"]).strip(),
                fmt=fmt,
                emit=emit,
                involved=involved,
                container=spec.get("container"),
                level=spec.get("level"),
                kinds=tuple(spec.get("kinds") or ()),
                event=_event_spec(p, where, spec.get("event"), involved),
            )
        )
    return Part(name=name, path=p, seed=seed, workloads=workloads, templates=templates)


def _event_spec(p: Path, where: str, ev: Any, involved: tuple[str, ...]) -> dict[str, str] | None:
    if ev is None:
        return None
    if not isinstance(ev, dict):
        raise _fail(p, where, "event must be a mapping")
    for key in ("reason", "type", "component"):
        if not ev.get(key):
            raise _fail(p, where, f"event: missing field {key!r}")
    if ev["type"] not in ("Normal", "Warning"):
        raise _fail(p, where, f"event: type {ev['type']!r} is not Normal or Warning")
    if not involved:
        raise _fail(p, where, "an event needs 'involved' (the workloads it is about)")
    return {str(k): str(v) for k, v in ev.items()}


# --- generation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    template: Template
    emitter: Workload
    obj: Workload | None

    @property
    def truth(self) -> str:
        w = self.obj or self.emitter
        container = "-" if self.obj else (self.template.container or w.container)
        return f"{w.namespace}/{w.owner}/{container}/{self.template.group}"


def groups(part: Part) -> list[Group]:
    out = []
    for t in part.templates:
        for e in t.emit:
            if t.involved:
                out.extend(Group(t, part.workloads[e], part.workloads[o]) for o in t.involved)
            else:
                out.append(Group(t, part.workloads[e], None))
    return out


def _counts(keys: list[str], total: int, seed: int) -> list[int]:
    """Line counts per group: Zipf-like over ranks drawn from a hash of (seed, group key), so that
    adding a template moves the other groups by at most one rank instead of reshuffling them."""
    n_groups = len(keys)
    order = sorted(range(n_groups), key=lambda i: zlib.crc32(f"{seed}:{keys[i]}".encode()))
    rank = {i: r for r, i in enumerate(order)}
    weights = [1.0 / (rank[i] + 1) ** ZIPF_S for i in range(n_groups)]
    budget = total - MIN_LINES * n_groups
    if budget < 0:
        raise CorpusError(f"{total} lines cannot give {n_groups} groups {MIN_LINES} lines each")
    s = sum(weights)
    counts = [MIN_LINES + int(budget * w / s) for w in weights]
    counts[order[0]] += total - sum(counts)
    return counts


def generate(part: Part, *, lines: int = LINES, seed: int | None = None) -> list[Line]:
    """All lines of ``part``, in time order. Deterministic for (part, lines, seed)."""
    seed = part.seed if seed is None else seed
    r = random.Random(seed)
    gs = groups(part)
    counts = _counts([g.truth for g in gs], lines, seed)
    out: list[tuple[int, int, Line]] = []
    seq = 0
    for g, n in zip(gs, counts, strict=True):
        t = g.template
        for _ in range(n):
            ts = T0_NS + r.randrange(SPAN_NS)
            pod = r.choice(g.emitter.pods)
            obj_pod = r.choice(g.obj.pods) if g.obj else ""
            ctx = _Ctx(rng=r, ts_ns=ts, pod=pod, workload=g.emitter, obj=g.obj, obj_pod=obj_pod)
            labels = {"namespace": g.emitter.namespace, "pod": pod, "container": t.container or g.emitter.container}
            labels.update(g.emitter.labels)
            if t.level:
                labels["level"] = t.level
            if g.emitter.kind == "Node":
                labels = {"job": "systemd-journal", "node": pod, "unit": g.emitter.container}
            line = Line(ts, labels, _render(t, ctx), t.id, t.family, g.truth, t.priority)
            out.append((ts, seq, line))
            seq += 1
    out.sort(key=lambda x: (x[0], x[1]))
    return [x[2] for x in out]


def write_jsonl(lines: list[Line], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for x in lines:
            fh.write(json.dumps({"ts": x.ts_ns, "labels": x.labels, "line": x.line}) + "\n")


def truth_rows(lines: list[Line]) -> Iterator[dict[str, str]]:
    for x in lines:
        yield {"template": x.template, "family": x.family, "group": x.truth, "priority": x.priority}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=sorted(PARTS), default="tune")
    ap.add_argument("--lines", type=int, default=LINES)
    ap.add_argument("--seed", type=int, default=None, help="default: the part's own seed")
    ap.add_argument("--out", required=True, help="JSONL for `kube-sentinel analyze`")
    ap.add_argument("--truth", default=None, help="JSONL of each line's labels, same order")
    a = ap.parse_args(argv)
    try:
        part = load_part(a.part)
        lines = generate(part, lines=a.lines, seed=a.seed)
    except CorpusError as err:
        raise SystemExit(str(err)) from None
    write_jsonl(lines, Path(a.out))
    if a.truth:
        with Path(a.truth).open("w", encoding="utf-8") as fh:
            for row in truth_rows(lines):
                fh.write(json.dumps(row) + "\n")
    print(f"{a.part}: {len(lines)} lines, {len(groups(part))} true groups, {len(part.templates)} templates -> {a.out}")


if __name__ == "__main__":
    main()
