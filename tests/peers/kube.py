"""A Kubernetes API test peer on 127.0.0.1 that the official client talks to unmodified.

Shapes follow real kube-apiserver v1.28 answers (``tests/fixtures/kubernetes/``): Status bodies
for 401/403/404/409/422, server-side dry-run returning the would-be object without storing it
(a DELETE takes its options, dryRun included, from its body when it has one and then ignores the
query, as the recordings ``dryrun_*`` show; an unknown dryRun value is a 422), graceful delete of
a pod bound to a node leaving it Terminating (``deletionTimestamp``), force delete (grace 0),
resourceVersion preconditions (409 on a stale PUT or a patch carrying an old
``metadata.resourceVersion``), label selectors, owner references and a tiny synchronous controller:
Deployments own ReplicaSets (``pod-template-hash``, ``deployment.kubernetes.io/revision``; an old
ReplicaSet whose template comes back is reused with the next revision and
``deployment.kubernetes.io/revision-history``), ReplicaSets and StatefulSets own pods.
Modelled on the documentation (no recording): the Eviction API and PodDisruptionBudgets (429).
``tests/peers/README.md`` lists every behaviour with the recording that proves it.

Also: ``/version``, the scale subresource, SelfSubjectAccessReview (answered from the deny list) and
``coordination.k8s.io/v1`` Leases. RBAC refusals, failures and delays are chosen per test::

    peer.deny("patch", "deployments/scale")          # 403 for that verb on that resource
    peer.fail(status=500, method="PATCH", path="/scale", times=1)
    peer.fail(delay=2.0, path="/pods/")              # the client's timeout fires
    peer.before("PATCH", "/deployments/web", lambda p: p.touch("deployments", "demo", "web"))
    peer.dry_run_ignored.add("DELETE")               # dry-run DELETEs are carried out for real

Not a conformance suite: no watch, no protobuf, no admission beyond a few validations.

Register the fixtures in ``tests/conftest.py`` with
``from tests.peers.kube import kube_peer, kube_peer_server  # noqa: F401`` (one server per session,
a fresh cluster state per test).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Obj = dict[str, Any]

VERSION = {
    "major": "1",
    "minor": "28",
    "gitVersion": "v1.28.0",
    "gitCommit": "8bfc72d0-renoce-import-of-v1.28.0",
    "gitTreeState": "clean",
    "buildDate": "2026-11-28T00:39:09Z",
    "goVersion": "go1.27.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

USER = "system:serviceaccount:kube-sentinel:kube-sentinel"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
HASH_LABEL = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` / ``pods``: how the API server names the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = {
    (r.group, r.plural): r
    for r in (
        Resource("", "v1", "namespaces", "Namespace", namespaced=False),
        Resource("", "v1", "nodes", "Node", namespaced=False),
        Resource("", "v1", "events", "Event"),  # served, but no controller of the peer records any
        Resource("apps", "v1", "controllerrevisions", "ControllerRevision"),
        Resource("", "v1", "pods", "Pod", subresources=("status", "eviction")),
        Resource("apps", "v1", "deployments", "Deployment", subresources=("scale", "status")),
        Resource("apps", "v1", "replicasets", "ReplicaSet", subresources=("scale", "status")),
        Resource("apps", "v1", "statefulsets", "StatefulSet", subresources=("scale", "status")),
        Resource("apps", "v1", "daemonsets", "DaemonSet", subresources=("status",)),
        Resource("batch", "v1", "jobs", "Job", subresources=("status",)),
        Resource("coordination.k8s.io", "v1", "leases", "Lease"),
        Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", subresources=("status",)),
    )
}
BY_PLURAL = {r.plural: r for r in RESOURCES.values()}
BY_PLURAL_KIND = {r.kind: r.plural for r in RESOURCES.values()}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


class ApiError(Exception):
    """Raised inside the peer; becomes a Status body."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> Obj:
        b: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            b["details"] = self.details
        b["code"] = self.code
        return b


def _details(res: Resource, name: str | None) -> Obj:
    d: Obj = {}
    if name:
        d["name"] = name
    if res.group:
        d["group"] = res.group
    d["kind"] = res.plural
    return d


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(res, name),
    )


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, reason, message)."""
    qual = f"{kind}.{group}" if group else kind
    summary = ", ".join(f"{f}: {m}" for f, _, m in causes)
    details: Obj = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    text = f"[{summary}]" if len(causes) > 1 else summary
    return ApiError(422, "Invalid", f'{qual} "{name}" is invalid: {text}', details)


# -- label selectors ---------------------------------------------------------------------------


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label selector syntax: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``."""
    for req in _split_selector(selector):
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\((.*)\)", req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif m := re.fullmatch(r"([\w./-]+)\s*(!=|==|=)\s*([\w./-]*)", req):
            key, op, value = m.groups()
            if op == "!=":
                if labels.get(key) == value:
                    return False
            elif labels.get(key) != value:
                return False
        elif m := re.fullmatch(r"!\s*([\w./-]+)", req):
            if m.group(1) in labels:
                return False
        elif re.fullmatch(r"[\w./-]+", req):
            if req not in labels:
                return False
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {req!r}")
    return True


def label_selector_string(selector: Obj) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, values = e["operator"], e["key"], ",".join(e.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(op, f"!{key}")
        )
    return ",".join(parts)


_FIELDS: dict[str, Callable[[Obj], str]] = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
}


def field_selector_matches(selector: str, obj: Obj) -> bool:
    for req in _split_selector(selector):
        m = re.fullmatch(r"([\w.]+)\s*(!=|==|=)\s*(.*)", req)
        if not m or m.group(1) not in _FIELDS:
            raise ApiError(400, "BadRequest", f"field label not supported: {m.group(1) if m else req}")
        value = _FIELDS[m.group(1)](obj)
        if (m.group(2) == "!=") == (value == m.group(3)):
            return False
    return True


# -- patches -----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Enough of strategic merge: maps merge, lists of named objects merge by ``name``, others replace."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in copy.deepcopy(patch).items() if k != "$patch"}
        out = copy.deepcopy(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = strategic_merge_patch(out.get(k), v)
        return out
    if (
        isinstance(patch, list)
        and isinstance(target, list)
        and all(isinstance(i, dict) and "name" in i for i in patch)
        and all(isinstance(i, dict) and "name" in i for i in target)
    ):
        out_list = copy.deepcopy(target)
        index = {item["name"]: n for n, item in enumerate(out_list)}
        for item in patch:
            if item.get("$patch") == "delete":
                out_list = [i for i in out_list if i["name"] != item["name"]]
                index = {i["name"]: n for n, i in enumerate(out_list)}
            elif item["name"] in index:
                out_list[index[item["name"]]] = strategic_merge_patch(out_list[index[item["name"]]], item)
            else:
                index[item["name"]] = len(out_list)
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def json_patch(target: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = _pointer(op["path"])
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ApiError(
                    422, "Invalid", f"the server rejected our request due to an error in our request: test failed: {op}"
                )
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                parent.pop(last)
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {kind!r}")
    return doc


# -- the peer ----------------------------------------------------------------------------------


@dataclass
class Failure:
    status: int = 500
    method: str | None = None
    path: str | None = None
    times: int = 1
    delay: float = 0.0
    reason: str = ""
    message: str = ""
    body: Any = None  # answer this (JSON, or text if a str) instead of a Status

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path in path)


@dataclass
class Hook:
    method: str
    path: str
    fn: Callable[[KubePeer], object]
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str
    status: int = 0


@dataclass
class KubePeer:
    """The cluster's state plus the knobs a test turns. Thread-safe; the server runs in another thread."""

    token: str | None = "peer-token"
    clock: Callable[[], float] = time.time
    node_name: str | None = (
        None  # when set, controller-made pods are bound to it (graceful delete leaves them Terminating)
    )
    url: str = ""
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)  # (plural, ns, name) -> object
    denied: set[tuple[str, str, str | None]] = field(default_factory=set)  # (verb, resource, namespace)
    failures: list[Failure] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    rv: int = 100
    # Methods whose dry run is carried out for real anyway: a broken server (or webhook), for the
    # defence-in-depth tests. Empty: dry-run is honoured wherever the real server honours it.
    dry_run_ignored: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        for ns in ("default", "kube-system", "kube-public"):
            self.add_namespace(ns)

    # -- knobs ---------------------------------------------------------------------------------

    def deny(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """RBAC refuses ``verb`` on ``resource`` (``pods``, ``deployments/scale``) [in ``namespace``]."""
        with self.lock:
            self.denied.add((verb, resource, namespace))

    def fail(
        self,
        status: int = 500,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        delay: float = 0.0,
        message: str = "",
        body: Any = None,
    ) -> None:
        """The next ``times`` matching requests answer ``status`` (after ``delay`` seconds; status 0 = only delay).

        With ``body`` the answer is that body (JSON, or raw text when a ``str``) instead of a Status.
        """
        with self.lock:
            self.failures.append(Failure(status, method, path, times, delay, message=message, body=body))

    def before(self, method: str, path: str, fn: Callable[[KubePeer], object], *, times: int = 1) -> None:
        """Run ``fn(peer)`` before handling the next ``times`` matching requests (e.g. a concurrent writer)."""
        with self.lock:
            self.hooks.append(Hook(method, path, fn, times))

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and (path is None or path in r.path)
            ]

    def allowed(self, verb: str, resource: str, namespace: str | None) -> bool:
        with self.lock:
            return not any(v == verb and r == resource and (n is None or n == namespace) for v, r, n in self.denied)

    # -- direct access for tests (no HTTP, no RBAC) ---------------------------------------------

    def add_namespace(self, name: str) -> Obj:
        return self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def create(self, obj: Obj) -> Obj:
        """Store ``obj`` (kind decides the resource) as the API would, and run the controllers."""
        res = next(r for r in RESOURCES.values() if r.kind == obj["kind"])
        with self.lock:
            ns = obj["metadata"].get("namespace", "default") if res.namespaced else ""
            created = self._create(res, ns, copy.deepcopy(obj), dry_run=False)
            self.reconcile(ns)
            return copy.deepcopy(self.objects[(res.plural, ns, created["metadata"]["name"])])

    def get(self, plural: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            o = self.objects.get((plural, namespace, name))
            return copy.deepcopy(o) if o is not None else None

    def list_objects(self, plural: str, namespace: str | None = None, selector: str = "") -> list[Obj]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (p, ns, _), o in sorted(self.objects.items())
                if p == plural
                and (namespace is None or ns == namespace)
                and (not selector or selector_matches(selector, o["metadata"].get("labels") or {}))
            ]

    def touch(self, plural: str, namespace: str, name: str) -> None:
        """A concurrent writer: bump the object's resourceVersion (an annotation changes)."""
        with self.lock:
            o = self.objects[(plural, namespace, name)]
            o["metadata"].setdefault("annotations", {})["peer/touched"] = str(self.rv + 1)
            self._bump(o)

    def set(self, plural: str, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj:
        """Change a stored object in place (bypassing validation) and bump its resourceVersion."""
        with self.lock:
            o = self.objects[(plural, namespace, name)]
            fn(o)
            self._bump(o)
            self.reconcile(namespace)
            return copy.deepcopy(o)

    def deployment(
        self, name: str, namespace: str = "demo", *, replicas: int = 2, env: str = "v1", **labels: str
    ) -> Obj:
        """A Deployment like the recordings' ``web``: one nginx container with env MODE."""
        labels = labels or {"app": name}
        if ("namespaces", "", namespace) not in self.objects:
            self.add_namespace(namespace)
        return self.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": dict(labels)},
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "containers": [{"name": "nginx", "image": "nginx", "env": [{"name": "MODE", "value": env}]}]
                        },
                    },
                },
            }
        )

    def statefulset(self, name: str, namespace: str = "demo", *, replicas: int = 2) -> Obj:
        if ("namespaces", "", namespace) not in self.objects:
            self.add_namespace(namespace)
        return self.create(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "replicas": replicas,
                    "serviceName": name,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "db", "image": "postgres"}]},
                    },
                },
            }
        )

    def pdb(self, name: str, namespace: str = "demo", *, app: str = "", **spec: Any) -> Obj:
        """A ``policy/v1`` PodDisruptionBudget over ``app=<app or name>``: ``minAvailable=`` or ``maxUnavailable=``."""
        return self.create(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": {"matchLabels": {"app": app or name}}, **spec},
            }
        )

    def pods(self, namespace: str = "demo", selector: str = "", *, live: bool | None = None) -> list[Obj]:
        """Pods; ``live=True`` only those not Terminating, ``live=False`` only Terminating ones."""
        out = self.list_objects("pods", namespace, selector)
        if live is None:
            return out
        return [p for p in out if ("deletionTimestamp" in p["metadata"]) != live]

    # -- storage internals ---------------------------------------------------------------------

    def _bump(self, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def _new_meta(self, res: Resource, ns: str, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    res.kind,
                    res.group,
                    "",
                    [("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")],
                )
            while True:
                name = meta["generateName"] + "".join(random.choice(_ALPHABET) for _ in range(5))
                if (res.plural, ns, name) not in self.objects:
                    break
            meta["name"] = name
        if res.namespaced:
            meta["namespace"] = ns
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock())
        if res.group in ("apps", "batch", "policy"):
            meta["generation"] = 1
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(k, None)

    def _defaults(self, res: Resource, obj: Obj) -> None:
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        spec = obj.setdefault("spec", {}) if res.kind not in ("Namespace",) else None
        if res.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif res.kind == "Pod":
            assert spec is not None
            _pod_spec_defaults(spec)
            obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
        elif res.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
            assert spec is not None
            if res.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
                spec.setdefault("replicas", 1)
            if res.kind == "Deployment":
                spec.setdefault(
                    "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
                )
                spec.setdefault("revisionHistoryLimit", 10)
                spec.setdefault("progressDeadlineSeconds", 600)
            tmpl = spec.setdefault("template", {})
            tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
            _pod_spec_defaults(tmpl.setdefault("spec", {}))
            obj.setdefault("status", {})

    def _validate(self, res: Resource, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        causes: list[tuple[str, str, str]] = []
        if not _DNS1123.fullmatch(name) or len(name) > 253:
            causes.append(
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
                    "characters, '-' or '.', and must start and end with an alphanumeric character",
                )
            )
        if res.kind in ("Deployment", "ReplicaSet", "StatefulSet"):
            spec = obj.get("spec") or {}
            if int(spec.get("replicas", 0)) < 0:
                causes.append(
                    (
                        "spec.replicas",
                        "FieldValueInvalid",
                        f"Invalid value: {spec['replicas']}: must be greater than or equal to 0",
                    )
                )
            tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            sel = label_selector_string(spec.get("selector") or {})
            if not sel or not selector_matches(sel, tlabels):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        "FieldValueInvalid",
                        f"Invalid value: {tlabels}: `selector` does not match template `labels`",
                    )
                )
            if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
                causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
        if res.kind == "Pod" and not (obj.get("spec") or {}).get("containers"):
            causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        if causes:
            raise invalid(res.kind, res.group, name, causes)

    def _create(self, res: Resource, ns: str, obj: Obj, *, dry_run: bool) -> Obj:
        if res.namespaced and ("namespaces", "", ns) not in self.objects:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
        self._new_meta(res, ns, obj)
        self._defaults(res, obj)
        self._validate(res, obj)
        key = (res.plural, ns, obj["metadata"]["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{res.qualified} "{key[2]}" already exists', _details(res, key[2]))
        if dry_run:
            obj["metadata"]["resourceVersion"] = str(self.rv)
            return obj
        self._bump(obj)
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def _update(self, res: Resource, ns: str, name: str, new: Obj, *, dry_run: bool, precondition: str | None) -> Obj:
        """Write ``new`` over the stored object: immutable fields kept, generation and rv bumped on change."""
        key = (res.plural, ns, name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(res, name)
        if precondition is not None and precondition != old["metadata"].get("resourceVersion"):
            raise conflict(res, name)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        meta = new.setdefault("metadata", {})
        for k in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        meta["resourceVersion"] = old["metadata"].get("resourceVersion")
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        self._defaults(res, new)
        self._validate(res, new)
        if new == old:
            return copy.deepcopy(old)
        if res.group in ("apps", "batch") and new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry_run:
            return new
        self._bump(new)
        self.objects[key] = new
        return copy.deepcopy(new)

    def _delete(self, res: Resource, ns: str, name: str, options: Obj, *, dry_run: bool) -> tuple[Obj, bool]:
        """(response body, whether the pod-style object is returned)."""
        key = (res.plural, ns, name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(res, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {obj['metadata'].get('uid')}",
                _details(res, name),
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"].get("resourceVersion"):
            raise conflict(res, name)
        now = self.clock()
        if res.kind != "Pod":
            if not dry_run:
                del self.objects[key]
                self._collect_garbage(obj["metadata"]["uid"])
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {**_details(res, name), "uid": obj["metadata"]["uid"]},
            }, False
        out = copy.deepcopy(obj)
        meta = out["metadata"]
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = int(out["spec"].get("terminationGracePeriodSeconds", 30))
        grace = int(grace)
        bound = bool(out["spec"].get("nodeName"))
        if not bound or grace == 0:
            meta["deletionTimestamp"] = rfc3339(now)
            meta["deletionGracePeriodSeconds"] = 0
            if not dry_run:
                self._bump(out)
                del self.objects[key]
            return out, True
        if "deletionTimestamp" in meta:
            remaining_until = parse_rfc3339(meta["deletionTimestamp"])
            if now + grace >= remaining_until:
                return out, True  # a second graceful delete with no shorter grace changes nothing
        meta["deletionTimestamp"] = rfc3339(now + grace)
        meta["deletionGracePeriodSeconds"] = grace
        if not dry_run:
            self._bump(out)
            self.objects[key] = out
        return copy.deepcopy(out), True

    def _collect_garbage(self, owner_uid: str) -> None:
        for key, o in list(self.objects.items()):
            if any(r.get("uid") == owner_uid for r in o["metadata"].get("ownerReferences") or []):
                if key in self.objects:
                    del self.objects[key]
                    self._collect_garbage(o["metadata"]["uid"])

    # -- controllers ---------------------------------------------------------------------------

    def reconcile(self, ns: str) -> None:
        """Deployments -> ReplicaSets -> pods, StatefulSets -> pods. Synchronous and idempotent."""
        if not ns:
            return
        for o in [o for (p, n, _), o in list(self.objects.items()) if p == "deployments" and n == ns]:
            self._reconcile_deployment(o)
        for o in [o for (p, n, _), o in list(self.objects.items()) if p == "replicasets" and n == ns]:
            self._reconcile_pods(o)
        for o in [o for (p, n, _), o in list(self.objects.items()) if p == "statefulsets" and n == ns]:
            self._reconcile_statefulset(o)
        for o in [o for (p, n, _), o in list(self.objects.items()) if p == "poddisruptionbudgets" and n == ns]:
            status = self._pdb_status(o)
            if o.get("status") != status:
                o["status"] = status
                self._bump(o)

    def _owned(self, plural: str, ns: str, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for (p, n, _), o in sorted(self.objects.items())
            if p == plural
            and n == ns
            and any(r.get("uid") == uid and r.get("controller") for r in o["metadata"].get("ownerReferences") or [])
        ]

    def _reconcile_deployment(self, dep: Obj) -> None:
        ns, name = dep["metadata"]["namespace"], dep["metadata"]["name"]
        template = dep["spec"]["template"]
        owned = self._owned("replicasets", ns, dep)
        revs = {o["metadata"]["name"]: int((o["metadata"].get("annotations") or {}).get(REVISION, "0")) for o in owned}
        top = max(revs.values(), default=0)
        current = next((o for o in owned if _strip_hash(o["spec"]["template"]) == _strip_hash(template)), None)
        replicas = int(dep["spec"].get("replicas", 1))
        surge = replicas + -(-replicas * 25 // 100)
        if current is None:
            h = pod_template_hash(template)
            rs_name = f"{name}-{h}"
            labels = {**(template["metadata"].get("labels") or {}), HASH_LABEL: h}
            tmpl = copy.deepcopy(template)
            tmpl["metadata"]["labels"] = dict(labels)
            sel = copy.deepcopy(dep["spec"]["selector"])
            sel.setdefault("matchLabels", {})[HASH_LABEL] = h
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                        "deployment.kubernetes.io/max-replicas": str(surge),
                        REVISION: str(top + 1),
                    },
                    "ownerReferences": [_owner_ref(dep)],
                },
                "spec": {"replicas": replicas, "selector": sel, "template": tmpl},
            }
            self._create(RESOURCES[("apps", "replicasets")], ns, rs, dry_run=False)
            current = self.objects[("replicasets", ns, rs_name)]
            rev = top + 1
        else:
            rev = revs[current["metadata"]["name"]]
            ann = current["metadata"].setdefault("annotations", {})
            changed = False
            if rev != top:
                history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
                ann[REVISION_HISTORY] = ",".join([*history, str(rev)])
                rev = top + 1
                ann[REVISION] = str(rev)
                changed = True
            if current["spec"].get("replicas") != replicas:
                current["spec"]["replicas"] = replicas
                ann["deployment.kubernetes.io/desired-replicas"] = str(replicas)
                ann["deployment.kubernetes.io/max-replicas"] = str(surge)
                changed = True
            if changed:
                self._bump(current)
        for o in owned:
            if o is not current and o["spec"].get("replicas", 0) != 0:
                o["spec"]["replicas"] = 0
                self._bump(o)
        # revisionHistoryLimit: drop the oldest scaled-down ReplicaSets beyond the limit
        old = sorted(
            (o for o in self._owned("replicasets", ns, dep) if o is not current),
            key=lambda o: int((o["metadata"].get("annotations") or {}).get(REVISION, "0")),
        )
        limit = int(dep["spec"].get("revisionHistoryLimit", 10))
        for o in old[: max(0, len(old) - limit)]:
            del self.objects[("replicasets", ns, o["metadata"]["name"])]
            self._collect_garbage(o["metadata"]["uid"])
        ann = dep["metadata"].setdefault("annotations", {})
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "unavailableReplicas": replicas,
        }
        # Progressing names the ReplicaSet the last rollout went to; its lastUpdateTime moves when
        # the Deployment switches ReplicaSets (recorded: deployment_after_rollout, deployment_after_rollback)
        rs_name = current["metadata"]["name"]
        before = next(
            (c for c in (dep.get("status") or {}).get("conditions") or [] if c["type"] == "Progressing"), None
        )
        message = f'ReplicaSet "{rs_name}" is progressing.'
        if before is not None and before["message"] == message:
            progressing = before
        else:
            now = rfc3339(self.clock())
            progressing = {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": before["lastTransitionTime"] if before else now,
                "reason": "ReplicaSetUpdated",
                "message": message,
            }
        status["conditions"] = [progressing]
        if ann.get(REVISION) != str(rev) or dep.get("status") != status:
            ann[REVISION] = str(rev)
            dep["status"] = status
            self._bump(dep)

    def _reconcile_pods(self, rs: Obj) -> None:
        ns = rs["metadata"]["namespace"]
        want = int(rs["spec"].get("replicas", 0))
        live = [p for p in self._owned("pods", ns, rs) if "deletionTimestamp" not in p["metadata"]]
        for p in live[want:][::-1]:
            del self.objects[("pods", ns, p["metadata"]["name"])]
        for _ in range(want - len(live)):
            self._make_pod(rs, f"{rs['metadata']['name']}-{_rand5()}")
        if (rs.get("status") or {}).get("replicas") != want:
            rs["status"] = {
                "replicas": want,
                "fullyLabeledReplicas": want,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
            self._bump(rs)

    def _reconcile_statefulset(self, sts: Obj) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        want = int(sts["spec"].get("replicas", 0))
        for p in self._owned("pods", ns, sts):
            m = re.fullmatch(re.escape(name) + r"-(\d+)", p["metadata"]["name"])
            if m and int(m.group(1)) >= want:
                del self.objects[("pods", ns, p["metadata"]["name"])]
        for i in range(want):
            if ("pods", ns, f"{name}-{i}") not in self.objects:
                self._make_pod(sts, f"{name}-{i}", extra={"statefulset.kubernetes.io/pod-name": f"{name}-{i}"})
        if (sts.get("status") or {}).get("replicas") != want:
            sts["status"] = {"replicas": want, "observedGeneration": sts["metadata"].get("generation", 1)}
            self._bump(sts)

    def _make_pod(self, owner: Obj, name: str, extra: dict[str, str] | None = None) -> None:
        tmpl = copy.deepcopy(owner["spec"]["template"])
        spec = tmpl.get("spec") or {}
        if self.node_name:
            spec["nodeName"] = self.node_name
        meta = tmpl.get("metadata") or {}
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": owner["metadata"]["namespace"],
                "labels": {**(meta.get("labels") or {}), **(extra or {})},
                "ownerReferences": [_owner_ref(owner)],
            },
            "spec": spec,
        }
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        if owner["kind"] == "ReplicaSet":
            pod["metadata"]["generateName"] = owner["metadata"]["name"] + "-"
        self._create(RESOURCES[("", "pods")], owner["metadata"]["namespace"], pod, dry_run=False)
        if self.node_name:
            status = self.objects[("pods", owner["metadata"]["namespace"], name)]["status"]
            status["phase"] = "Running"
            status["conditions"] = [{"type": "Ready", "status": "True"}]

    # -- eviction and disruption budgets (modelled on the API docs and the v1.28 eviction source) -----

    def _evict(self, ns: str, name: str, body: Any, query_dry_run: list[str]) -> tuple[int, Obj]:
        """``POST pods/{name}/eviction``: delete the pod unless a PodDisruptionBudget forbids it (429).

        Dry-run: the query's ``dryRun`` is copied into ``deleteOptions.dryRun`` when that is empty;
        when both are set they must match (else 500, as ``propagateDryRun`` answers).
        """
        if not isinstance(body, dict) or body.get("kind") != "Eviction":
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        if (body.get("metadata") or {}).get("name") != name:
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        _check_dry_run(query_dry_run, "CreateOptions")
        options = dict(body.get("deleteOptions") or {})
        body_dry = options.get("dryRun") or []
        _check_dry_run(body_dry, "DeleteOptions")
        if not body_dry:
            options["dryRun"] = list(query_dry_run)
        elif query_dry_run and query_dry_run != body_dry:
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: Non-matching dry-run options in request and content: "
                f"[{' '.join(query_dry_run)}] and [{' '.join(body_dry)}]",
                {"causes": [{"message": "Non-matching dry-run options in request and content"}]},
            )
        dry = bool(options["dryRun"]) and "POST" not in self.dry_run_ignored
        pods = RESOURCES[("", "pods")]
        pod = self.objects.get(("pods", ns, name))
        if pod is None:
            raise not_found(pods, name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed", "Pending") and "deletionTimestamp" not in pod["metadata"]:
            budgets = [
                b
                for (p, n, _), b in sorted(self.objects.items())
                if p == "poddisruptionbudgets"
                and n == ns
                and selector_matches(
                    label_selector_string((b.get("spec") or {}).get("selector") or {}),
                    pod["metadata"].get("labels") or {},
                )
            ]
            if len(budgets) > 1:
                return 500, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    "code": 500,
                }
            if budgets:
                pdb = budgets[0]
                st = self._pdb_status(pdb)
                unhealthy_ok = not _ready(pod) and st["currentHealthy"] >= st["desiredHealthy"] > 0
                if not unhealthy_ok and st["disruptionsAllowed"] <= 0:
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget {pdb['metadata']['name']} needs "
                                    f"{st['desiredHealthy']} healthy pods and has {st['currentHealthy']} currently",
                                }
                            ]
                        },
                    )
        if not dry:
            conditions = pod.setdefault("status", {}).setdefault("conditions", [])
            conditions.append(
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                }
            )
            self._bump(pod)
        self._delete(pods, ns, name, options, dry_run=dry)
        if not dry:
            self.reconcile(ns)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def _pdb_status(self, pdb: Obj) -> Obj:
        """What the disruption controller would report for ``pdb`` now (computed, not eventual)."""
        ns = pdb["metadata"]["namespace"]
        spec = pdb.get("spec") or {}
        sel = label_selector_string(spec.get("selector") or {})
        pods = self._owned_by_selector(ns, sel)
        healthy = sum(1 for p in pods if _ready(p) and "deletionTimestamp" not in p["metadata"])
        if "minAvailable" in spec and not str(spec["minAvailable"]).endswith("%"):
            expected = len(pods)
            desired = int(spec["minAvailable"])
        else:
            expected = self._expected_pods(ns, pods)
            if "minAvailable" in spec:
                desired = -(-int(str(spec["minAvailable"]).rstrip("%")) * expected // 100)
            else:
                max_unavailable = str(spec.get("maxUnavailable", 0))
                if max_unavailable.endswith("%"):
                    desired = expected - -(-int(max_unavailable.rstrip("%")) * expected // 100)
                else:
                    desired = expected - int(max_unavailable)
        return {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "disruptionsAllowed": max(0, healthy - desired),
            "currentHealthy": healthy,
            "desiredHealthy": max(0, desired),
            "expectedPods": expected,
        }

    def _owned_by_selector(self, ns: str, selector: str) -> list[Obj]:
        if not selector:
            return []
        return [
            o
            for (p, n, _), o in sorted(self.objects.items())
            if p == "pods" and n == ns and selector_matches(selector, o["metadata"].get("labels") or {})
        ]

    def _expected_pods(self, ns: str, pods: list[Obj]) -> int:
        """The sum of the scale of the pods' controllers (a ReplicaSet counts as its Deployment)."""
        seen: dict[str, int] = {}
        for p in pods:
            ref = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if ref is None:
                continue
            owner = self.objects.get((BY_PLURAL_KIND.get(ref["kind"], ""), ns, ref["name"]))
            if owner is None:
                continue
            top = next((r for r in owner["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if top is not None and top.get("kind") == "Deployment":
                dep = self.objects.get(("deployments", ns, top["name"]))
                if dep is not None:
                    owner = dep
            seen[owner["metadata"]["uid"]] = int((owner.get("spec") or {}).get("replicas", 0))
        return sum(seen.values())

    # -- HTTP ----------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        raw = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        seen = Seen(method, path, dict(request.query_params), body, ctype)
        delay, failure = 0.0, None
        with self.lock:
            self.requests.append(seen)
            for f in self.failures:
                if f.times > 0 and f.matches(method, path):
                    f.times -= 1
                    delay, failure = f.delay, f
                    break
            hooks = [h for h in self.hooks if h.times > 0 and h.method == method and h.path in path]
            for h in hooks:
                h.times -= 1
        if delay:
            await asyncio.sleep(delay)
        for h in hooks:
            with self.lock:
                h.fn(self)
        if failure is not None and failure.body is not None:
            seen.status = failure.status
            if isinstance(failure.body, str):
                return Response(failure.body, status_code=failure.status, media_type="text/html")
            return JSONResponse(failure.body, status_code=failure.status)
        try:
            if failure is not None and failure.status:
                raise _injected(failure)
            with self.lock:
                code, out = self._dispatch(request, method, path, body, ctype)
        except ApiError as err:
            code, out = err.code, err.body()
        seen.status = code
        return JSONResponse(out, status_code=code)

    def _authenticate(self, request: Request) -> None:
        if self.token is None:
            return
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _authorize(self, verb: str, res: Resource, sub: str | None, ns: str, name: str | None) -> None:
        resource = res.plural + (f"/{sub}" if sub else "")
        if self.allowed(verb, resource, ns or None):
            return
        what = f'{res.qualified} "{name}"' if name else res.qualified
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{USER}" cannot {verb} resource "{resource}" in API group "{res.group}"{where}',
            _details(res, name),
        )

    def _dispatch(self, request: Request, method: str, path: str, body: Any, ctype: str) -> tuple[int, Obj]:
        self._authenticate(request)
        q = request.query_params
        if path.rstrip("/") == "/version":
            return 200, dict(VERSION)
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if group == "authorization.k8s.io" and rest == ["selfsubjectaccessreviews"] and method == "POST":
            return 201, self._access_review(body or {})
        ns = ""
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = RESOURCES.get((group, rest[0]))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        # Options of a DELETE come from its body when it has one, and then the query is ignored
        # (recorded: dryrun_query_with_body_delete_pod); without a body, from the query
        # (dryrun_query_no_body_delete_pod). Every other verb reads dryRun from the query.
        has_body = body is not None
        delete_options: Obj = {}
        if method == "DELETE":
            if has_body:
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
                delete_options = dict(body)
            else:
                if "dryRun" in q:
                    delete_options["dryRun"] = q.getlist("dryRun")
                if q.get("gracePeriodSeconds") is not None:
                    delete_options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
            dry_values = delete_options.get("dryRun") or []
            if not isinstance(dry_values, list):
                raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
            _check_dry_run(dry_values, "DeleteOptions")
        else:
            dry_values = q.getlist("dryRun")
            options_kind = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions"}.get(method)
            if options_kind:
                _check_dry_run(dry_values, options_kind)
        dry = bool(dry_values) and method not in self.dry_run_ignored
        if res.plural == "pods" and sub == "eviction":
            if method != "POST" or name is None:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            self._authorize("create", res, sub, ns, name)
            return self._evict(ns, name, body, q.getlist("dryRun"))
        verb = {
            "GET": "get" if name else ("watch" if q.get("watch") in ("true", "1") else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method)
        if verb is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        self._authorize(verb, res, sub, ns, name)
        if verb == "watch":
            raise ApiError(400, "BadRequest", "watch is not supported by the test peer")
        if verb == "list":
            return 200, self._list(res, ns, q)
        if verb == "create":
            if name:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
            if res.namespaced and body.get("metadata", {}).get("namespace") not in (None, ns):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            out = self._create(res, ns, body, dry_run=dry)
            if not dry:
                self.reconcile(ns)
            return 201, out
        assert name is not None
        if verb == "get":
            obj = self.objects.get((res.plural, ns, name))
            if obj is None:
                raise not_found(res, name)
            return 200, self._scale_of(res, obj) if sub == "scale" else copy.deepcopy(obj)
        if verb == "delete":
            code_out = self._delete(res, ns, name, delete_options, dry_run=dry)
            if not dry:
                self.reconcile(ns)
            return 200, code_out[0]
        # update / patch
        obj = self.objects.get((res.plural, ns, name))
        if obj is None:
            raise not_found(res, name)
        current = self._scale_of(res, obj) if sub == "scale" else copy.deepcopy(obj)
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if not rv:
                raise invalid(
                    res.kind,
                    res.group,
                    name,
                    [
                        (
                            "metadata.resourceVersion",
                            "FieldValueInvalid",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            new, precondition = body, rv
        else:
            new = self._apply_patch(current, body, ctype)
            precondition = (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
        if sub == "scale":
            if precondition is not None and precondition != obj["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            replicas = (new.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    [
                        (
                            "spec.replicas",
                            "FieldValueInvalid",
                            f"Invalid value: {replicas}: must be greater than or equal to 0",
                        )
                    ],
                )
            parent = copy.deepcopy(obj)
            parent["spec"]["replicas"] = replicas
            written = self._update(res, ns, name, parent, dry_run=dry, precondition=None)
            if not dry:
                self.reconcile(ns)
            return 200, self._scale_of(res, written)
        if sub == "status":
            merged = copy.deepcopy(obj)
            merged["status"] = new.get("status", {})
            if not dry:
                self._bump(merged)
                self.objects[(res.plural, ns, name)] = merged
            return 200, merged
        written = self._update(res, ns, name, new, dry_run=dry, precondition=precondition)
        if not dry:
            self.reconcile(ns)
        return 200, written

    def _apply_patch(self, current: Obj, body: Any, ctype: str) -> Obj:
        if ctype == "application/merge-patch+json":
            return merge_patch(current, body)  # type: ignore[no-any-return]
        if ctype == "application/strategic-merge-patch+json":
            return strategic_merge_patch(current, body)  # type: ignore[no-any-return]
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "json patch must be a list of operations")
            return json_patch(current, body)
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
        )

    def _scale_of(self, res: Resource, obj: Obj) -> Obj:
        sel = obj["spec"].get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj["metadata"]["name"],
                "namespace": obj["metadata"]["namespace"],
                "uid": obj["metadata"]["uid"],
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "creationTimestamp": obj["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": label_selector_string(sel),
            },
        }

    def _list(self, res: Resource, ns: str, q: Any) -> Obj:
        labels, fields = q.get("labelSelector", ""), q.get("fieldSelector", "")
        items = [
            copy.deepcopy(o)
            for (p, n, _), o in sorted(self.objects.items())
            if p == res.plural
            and (not ns or n == ns)
            and (not labels or selector_matches(labels, o["metadata"].get("labels") or {}))
            and (not fields or field_selector_matches(fields, o))
        ]
        for o in items:
            o.pop("apiVersion", None)
            o.pop("kind", None)
        meta: Obj = {"resourceVersion": str(self.rv)}
        if cont := q.get("continue"):
            try:
                start = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))["start"]
            except (ValueError, KeyError, TypeError) as err:
                raise ApiError(400, "BadRequest", f"invalid continue token: continue key is not valid: {err}") from None
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > tuple(start)]
        if limit := int(q.get("limit", "0") or 0):
            if len(items) > limit:
                last = items[limit - 1]["metadata"]
                token = {"v": "meta.k8s.io/v1", "rv": self.rv, "start": [last.get("namespace", ""), last["name"]]}
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}

    def _access_review(self, body: Obj) -> Obj:
        attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
        resource = attrs.get("resource", "") + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
        allowed = self.allowed(attrs.get("verb", ""), resource, attrs.get("namespace") or None)
        status: Obj = {"allowed": allowed}
        if allowed:
            status["reason"] = 'RBAC: allowed by ClusterRoleBinding "kube-sentinel" of ClusterRole "kube-sentinel"'
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": body.get("spec") or {},
            "status": status,
        }


def _check_dry_run(values: list[str], options_kind: str) -> None:
    """Only ``All`` is a dry-run value: anything else is a 422 naming the options kind (recorded for DeleteOptions)."""
    if all(v == "All" for v in values):
        return
    go = "[]string{" + ", ".join(json.dumps(v) for v in values) + "}"
    message = f'Unsupported value: {go}: supported values: "All"'
    raise ApiError(
        422,
        "Invalid",
        f'{options_kind}.meta.k8s.io "" is invalid: dryRun: {message}',
        {
            "group": "meta.k8s.io",
            "kind": options_kind,
            "causes": [{"reason": "FieldValueNotSupported", "message": message, "field": "dryRun"}],
        },
    )


def _injected(f: Failure) -> ApiError:
    reasons = {
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
        429: "TooManyRequests",
        422: "Invalid",
        409: "Conflict",
    }
    message = f.message or {
        500: "Internal error occurred: injected by the test peer",
        503: "the server is currently unable to handle the request",
        504: "the server was unable to return a response in the time allotted",
        429: "the server has received too many requests and has asked us to try again later",
    }.get(f.status, f"injected failure {f.status}")
    return ApiError(f.status, reasons.get(f.status, "Unknown"), message, {})


def _ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (what the eviction API calls healthy)."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _rand5() -> str:
    return "".join(random.choice(_ALPHABET) for _ in range(5))


def _pod_spec_defaults(spec: Obj) -> None:
    for c in spec.get("containers") or []:
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault(
            "imagePullPolicy",
            "Always" if ":" not in c.get("image", "") or c["image"].endswith(":latest") else "IfNotPresent",
        )
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def _owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _strip_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return t


def pod_template_hash(template: Obj) -> str:
    """A stable 10-character hash of a pod template, in the API server's safe alphabet."""
    digest = int.from_bytes(
        hashlib.sha256(json.dumps(_strip_hash(template), sort_keys=True).encode()).digest()[:8], "big"
    )
    out = ""
    for _ in range(10):
        digest, r = divmod(digest, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


# -- the server --------------------------------------------------------------------------------


class PeerServer:
    """Runs a :class:`KubePeer` under uvicorn on 127.0.0.1 (port 0) in a thread.

    ``server.peer`` may be swapped for a fresh one between tests (the session fixture does):
    each request goes to the peer installed at the moment it arrives.
    """

    def __init__(self, peer: KubePeer) -> None:
        self.peer = peer
        self.url = ""
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="kube-peer", daemon=True)

    async def _handle(self, request: Request) -> Response:
        return await self.peer.handle(request)

    def install(self, peer: KubePeer) -> KubePeer:
        peer.url = self.url
        self.peer = peer
        return peer

    def __enter__(self) -> KubePeer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("kube test peer did not start")
            time.sleep(0.005)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.install(self.peer)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def kube_peer_server() -> Iterator[PeerServer]:
    """One uvicorn server for the session; ``kube_peer`` installs a fresh cluster on it per test."""
    server = PeerServer(KubePeer())
    with server:
        yield server


@pytest.fixture
def kube_peer(kube_peer_server: PeerServer) -> KubePeer:
    """A fresh Kubernetes API peer (namespaces default, kube-system, kube-public); ``.url``, ``.token``."""
    return kube_peer_server.install(KubePeer())
