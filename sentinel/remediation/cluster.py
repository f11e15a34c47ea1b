"""The Kubernetes adapter: the only module that talks to the API server (official ``kubernetes`` client).

Each method is one API call (or one read-modify-write with a single retry on 409), returns the
object as plain JSON (``dict``), and accepts ``dry_run`` for writes: server-side dry-run, so a dry
run still proves the target exists and RBAC allows the call. Dry-run travels where the API server
reads it (recorded from a real v1.28 server, ``tests/fixtures/kubernetes/dryrun_*``):

* DELETE: in the DeleteOptions **body** (``dryRun: ["All"]``). When a DELETE has a body the server
  decodes its options from the body and ignores the query, so ``?dryRun=All`` next to a body is a
  real delete. The official client's ``delete_namespaced_pod(dry_run=..., body=...)`` does exactly
  that, so :meth:`Cluster.delete_pod` never passes ``dry_run=`` to it: every option is in the body.
* PATCH, POST, PUT: in the query (``?dryRun=All``).
* POST ``pods/eviction``: in both, the query (read by the create handler and admission) and
  ``deleteOptions.dryRun`` (read by the eviction's own delete); the server refuses the two if they
  differ.

Every foreign error is translated here, at the edge, by :func:`translate`: ``ApiException`` by
status into :class:`~sentinel.errors.Forbidden` (naming the verb and resource and pointing at the
RBAC file), ``NotFound``, ``Conflict``, ``Invalid``, ``ClusterUnavailable`` (5xx, 429, timeouts,
connection errors); a 429 from an eviction is :class:`~sentinel.errors.DisruptionBudgetRefused`.
Payloads are capped with :func:`~sentinel.errors.cap`.

One concern, hence one module even past 500 lines: this is the only module allowed to import
``kubernetes`` (an import-linter contract), so every API call and the translation of its errors
live here together; the decisions about what to call are elsewhere (actions, remediator, owners).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException, OpenApiException
from kubernetes.config.config_exception import ConfigException

from sentinel.core.model import Target
from sentinel.errors import (
    ClusterError,
    ClusterTimeout,
    ClusterUnavailable,
    Conflict,
    DisruptionBudgetRefused,
    Forbidden,
    Invalid,
    NotFound,
    cap,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T")

RBAC_FILE = "deploy/kubernetes/rbac.yaml"
DRY_RUN_ALL = "All"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"

# kind -> (API group, plural)
KINDS: dict[str, tuple[str, str]] = {
    "Pod": ("", "pods"),
    "ReplicaSet": ("apps", "replicasets"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "Job": ("batch", "jobs"),
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
SCALABLE_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True, slots=True)
class Call:
    """What an API call was about, so that its failure can say so."""

    verb: str
    resource: str  # plural, with /subresource
    namespace: str = ""
    name: str = ""
    group: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f"{self.namespace}/{self.name}" if self.name else self.namespace or "cluster"
        return f"{self.verb} {res} {where}"


def _status_message(err: ApiException) -> str:
    body = err.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            data = json.loads(body)
        except ValueError:
            return cap(body)
        if isinstance(data, dict) and data.get("message"):
            causes = [
                str(c.get("message"))
                for c in (data.get("details") or {}).get("causes") or []
                if isinstance(c, dict) and c.get("message") and str(c.get("message")) not in data["message"]
            ]
            return cap("; ".join([str(data["message"]), *causes]))
        return cap(body)
    return cap(err.reason or f"HTTP {err.status}")


def translate(err: BaseException, call: Call) -> ClusterError:
    """The :mod:`sentinel.errors` class for a foreign error raised while making ``call``."""
    if isinstance(err, ClusterError):
        return err
    if isinstance(err, ApiException):
        status = int(err.status or 0)
        msg = _status_message(err)
        if status == 403:
            return Forbidden(
                f"RBAC refused {call}: the service account cannot {call.verb} {call.resource!r} "
                f"in API group {call.group!r}; grant it in {RBAC_FILE}. API server: {msg}",
                status=status,
            )
        if status == 401:
            return Forbidden(
                f"the API server refused our credentials for {call} (401 Unauthorized): check the kubeconfig "
                f"or the service account token. API server: {msg}",
                status=status,
            )
        if status in (404, 410):
            return NotFound(f"{call}: not found: {msg}", status=status)
        if status == 409:
            return Conflict(f"{call}: conflict: {msg}", status=status)
        if status in (400, 415, 422):
            return Invalid(f"{call}: rejected by the API server ({status}): {msg}", status=status)
        if status == 429 and call.resource == "pods/eviction":
            return DisruptionBudgetRefused(
                f"{call}: refused, the eviction would violate a PodDisruptionBudget (429): {msg}", status=status
            )
        if status == 429 or status >= 500 or status == 0:
            return ClusterUnavailable(
                f"{call}: API server unavailable ({status or 'no response'}): {msg}", status=status
            )
        return ClusterError(f"{call}: unexpected answer {status}: {msg}", status=status)
    reason = err.reason if isinstance(err, urllib3.exceptions.MaxRetryError) else err
    if isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return ClusterUnavailable(f"{call}: cannot reach the API server: {cap(err)}")
    if isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
        return ClusterTimeout(f"{call}: timed out: {cap(err)}")
    if isinstance(err, urllib3.exceptions.HTTPError | ConnectionError | OSError):
        return ClusterUnavailable(f"{call}: cannot reach the API server: {cap(err)}")
    if isinstance(err, json.JSONDecodeError):  # a body that is not JSON
        return ClusterUnavailable(f"{call}: unreadable answer from the API server: {cap(err)}")
    if isinstance(err, OpenApiException):
        return ClusterError(f"{call}: client error: {cap(err)}")
    return ClusterError(f"{call}: {type(err).__name__}: {cap(err)}")


FOREIGN_ERRORS: tuple[type[BaseException], ...] = (
    OpenApiException,
    urllib3.exceptions.HTTPError,
    OSError,
    json.JSONDecodeError,
)


def _controller_of(obj: Obj) -> Obj | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """A LabelSelector object as the ``labelSelector`` query string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], ",".join(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        else:
            parts.append(f"!{key}")
    return ",".join(parts)


class Cluster:
    """One API server, through the official client. Thread-safe (urllib3 pool)."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.core = k8s.CoreV1Api(api_client)
        self.apps = k8s.AppsV1Api(api_client)
        self.batch = k8s.BatchV1Api(api_client)
        self.authz = k8s.AuthorizationV1Api(api_client)
        self.version_api = k8s.VersionApi(api_client)
        self.host = str(api_client.configuration.host)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool | None = None,
        timeout: float = 10.0,
    ) -> Cluster:
        """From a kubeconfig file, or the in-cluster service account.

        The service account is tried first when ``in_cluster`` is true (or None and
        ``KUBERNETES_SERVICE_HOST`` is set), then ``kubeconfig`` (or ``$KUBECONFIG`` /
        ``~/.kube/config``), so a config that says ``in_cluster: true`` still works on a laptop.
        ``in_cluster=False`` skips the service account. Raises ``ClusterUnavailable`` ("no cluster
        configured", naming what was tried) when nothing works: the caller then runs dry without a cluster.
        """
        cfg = k8s.Configuration()
        tried: list[str] = []
        load_incluster: Callable[..., Any] = k8s_config.load_incluster_config
        load_kubeconfig: Callable[..., Any] = k8s_config.load_kube_config
        if in_cluster or (in_cluster is None and os.environ.get("KUBERNETES_SERVICE_HOST")):
            try:
                load_incluster(client_configuration=cfg)
                return cls(k8s.ApiClient(cfg), timeout=timeout)
            except ConfigException as err:
                tried.append(f"in-cluster service account: {cap(err)}")
        path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        if not os.path.exists(os.path.expanduser(path.split(os.pathsep)[0])):
            tried.append(f"kubeconfig {path}: no such file")
        else:
            try:
                load_kubeconfig(config_file=path, context=context, client_configuration=cfg)
                return cls(k8s.ApiClient(cfg), timeout=timeout)
            except (ConfigException, OSError, ValueError, TypeError) as err:
                tried.append(f"kubeconfig {path}: {cap(err)}")
        raise ClusterUnavailable("no cluster configured: " + "; ".join(tried))

    @classmethod
    def for_host(cls, host: str, token: str | None = None, *, timeout: float = 5.0, verify_ssl: bool = True) -> Cluster:
        """An explicit API server URL and bearer token (tests, or a proxy)."""
        cfg = k8s.Configuration()
        cfg.host = host.rstrip("/")
        cfg.verify_ssl = verify_ssl
        cfg.retries = 1
        if token:
            cfg.api_key = {"BearerToken": token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cls(k8s.ApiClient(cfg), timeout=timeout)

    def close(self) -> None:
        close: Callable[[], Any] = self.api_client.close
        close()

    # -- the one place foreign calls happen -------------------------------------------------------

    def _call(self, call: Call, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            raw = resp.data
            data = json.loads(raw) if raw else {}
        except FOREIGN_ERRORS as err:
            mapped = translate(err, call)
            log.info("[%s/%s] %s failed: %s", call.namespace or "-", call.name or "-", call, mapped)
            raise mapped from err
        log.info("[%s/%s] %s ok", call.namespace or "-", call.name or "-", call)
        return data if isinstance(data, dict) else {"value": data}

    @staticmethod
    def _dry(dry_run: bool) -> dict[str, str]:
        """The query's ``dryRun=All`` for PATCH, POST and PUT (never for a DELETE with a body)."""
        return {"dry_run": DRY_RUN_ALL} if dry_run else {}

    # -- reads ---------------------------------------------------------------------------------

    def version(self) -> Obj:
        return self._call(Call("get", "version"), self.version_api.get_code)

    def get_pod(self, namespace: str, name: str) -> Obj:
        return self._call(Call("get", "pods", namespace, name), self.core.read_namespaced_pod, name, namespace)

    def list_pods(self, namespace: str, *, label_selector: str = "") -> list[Obj]:
        kw = {"label_selector": label_selector} if label_selector else {}
        out = self._call(Call("list", "pods", namespace), self.core.list_namespaced_pod, namespace, **kw)
        return list(out.get("items") or [])

    def list_events(self, namespace: str) -> list[Obj]:
        """The namespace's core/v1 Events (the caller picks the Warnings of its workload)."""
        out = self._call(Call("list", "events", namespace), self.core.list_namespaced_event, namespace)
        return list(out.get("items") or [])

    def list_replicasets(self, namespace: str, *, label_selector: str = "") -> list[Obj]:
        kw = {"label_selector": label_selector} if label_selector else {}
        out = self._call(
            Call("list", "replicasets", namespace, group="apps"), self.apps.list_namespaced_replica_set, namespace, **kw
        )
        return list(out.get("items") or [])

    def list_controllerrevisions(self, namespace: str, *, label_selector: str = "") -> list[Obj]:
        """incidents: a StatefulSet's revisions (Deployments have none: their revisions are ReplicaSets)."""
        kw = {"label_selector": label_selector} if label_selector else {}
        out = self._call(
            Call("list", "controllerrevisions", namespace, group="apps"),
            self.apps.list_namespaced_controller_revision,
            namespace,
            **kw,
        )
        return list(out.get("items") or [])

    def list_pods_page(self, namespace: str, *, limit: int, continue_token: str = "") -> Obj:
        """incidents: one page of a pod list (``limit``/``continue``); ``namespace`` "" lists every namespace."""
        kw: dict[str, Any] = {"limit": limit}
        if continue_token:
            kw["_continue"] = continue_token
        if namespace:
            return self._call(Call("list", "pods", namespace), self.core.list_namespaced_pod, namespace, **kw)
        return self._call(Call("list", "pods"), self.core.list_pod_for_all_namespaces, **kw)

    def get_object(self, namespace: str, kind: str, name: str) -> Obj:
        """A ReplicaSet, Deployment, StatefulSet, DaemonSet, Job or Pod."""
        group, plural = _kind(kind)
        readers: dict[str, Callable[..., Any]] = {
            "Pod": self.core.read_namespaced_pod,
            "ReplicaSet": self.apps.read_namespaced_replica_set,
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
            "Job": self.batch.read_namespaced_job,
        }
        return self._call(Call("get", plural, namespace, name, group), readers[kind], name, namespace)

    def get_scale(self, namespace: str, kind: str, name: str) -> Obj:
        group, plural = _kind(kind, SCALABLE_KINDS)
        fn = (
            self.apps.read_namespaced_deployment_scale
            if kind == "Deployment"
            else self.apps.read_namespaced_stateful_set_scale
        )
        return self._call(Call("get", f"{plural}/scale", namespace, name, group), fn, name, namespace)

    def can_i(self, verb: str, resource: str, *, group: str = "", namespace: str = "", subresource: str = "") -> bool:
        """A SelfSubjectAccessReview: may our credentials ``verb`` ``resource``?"""
        attrs: Obj = {"verb": verb, "resource": resource, "group": group}
        if namespace:
            attrs["namespace"] = namespace
        if subresource:
            attrs["subresource"] = subresource
        out = self._call(
            Call("create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
            self.authz.create_self_subject_access_review,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs},
            },
        )
        return bool((out.get("status") or {}).get("allowed"))

    # -- writes --------------------------------------------------------------------------------

    def delete_pod(
        self,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete a pod (the returned pod shows ``deletionTimestamp``); ``uid`` guards against a same-named successor.

        Every option, dry-run included, goes in the DeleteOptions body and none in the query: the
        API server ignores the query of a DELETE that has a body (see the module docstring).
        """
        body = delete_options(grace_period=grace_period, uid=uid, dry_run=dry_run)
        return self._call(
            Call("delete", "pods", namespace, name),
            self.core.delete_namespaced_pod,
            name,
            namespace,
            body=body,
            _headers={"Content-Type": JSON},
        )

    def evict_pod(
        self,
        namespace: str,
        name: str,
        *,
        grace_period: int | None = None,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Evict a pod (``policy/v1`` Eviction, ``pods/eviction`` create), so PodDisruptionBudgets hold.

        Dry-run goes in the query *and* in ``deleteOptions.dryRun``: the create handler (and
        admission) read the query, the eviction's delete reads its ``deleteOptions``, and the
        server copies one into the other when only one is set, refusing the pair when they differ.
        A 429 means the eviction would break a disruption budget:
        :class:`~sentinel.errors.DisruptionBudgetRefused`, to be refused and audited, never
        retried as a plain delete.
        """
        body: Obj = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": delete_options(grace_period=grace_period, uid=uid, dry_run=dry_run),
        }
        return self._call(
            Call("create", "pods/eviction", namespace, name),
            self.core.create_namespaced_pod_eviction,
            name,
            namespace,
            body,
            _headers={"Content-Type": JSON},
            **self._dry(dry_run),
        )

    def patch_workload(
        self, namespace: str, kind: str, name: str, patch: Obj, *, dry_run: bool = False, merge: bool = False
    ) -> Obj:
        """Patch a Deployment, StatefulSet or DaemonSet (strategic merge, or JSON merge if ``merge``)."""
        group, plural = _kind(kind, WORKLOAD_KINDS)
        fns: dict[str, Callable[..., Any]] = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
        }
        return self._call(
            Call("patch", plural, namespace, name, group),
            fns[kind],
            name,
            namespace,
            patch,
            _content_type=MERGE_PATCH if merge else STRATEGIC_PATCH,
            **self._dry(dry_run),
        )

    def patch_scale(
        self,
        namespace: str,
        kind: str,
        name: str,
        replicas: int,
        *,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Set replicas through the scale subresource; ``resource_version`` makes it conditional (409 if stale)."""
        group, plural = _kind(kind, SCALABLE_KINDS)
        body: Obj = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        fn = (
            self.apps.patch_namespaced_deployment_scale
            if kind == "Deployment"
            else self.apps.patch_namespaced_stateful_set_scale
        )
        return self._call(
            Call("patch", f"{plural}/scale", namespace, name, group),
            fn,
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
            **self._dry(dry_run),
        )

    # -- read-modify-write ----------------------------------------------------------------------

    def retry_on_conflict(self, attempt: Callable[[], T], *, what: str = "") -> T:
        """Run ``attempt`` (which reads fresh and writes conditionally); on 409 once more, then give up."""
        try:
            return attempt()
        except Conflict as err:
            log.info("conflict on %s, retrying once on a fresh read: %s", what or "write", err)
            return attempt()

    # -- resolution ----------------------------------------------------------------------------

    def resolve(
        self,
        namespace: str,
        *,
        pod: str | None = None,
        workload_hint: str | None = None,
        kinds: tuple[str, ...] = WORKLOAD_KINDS,
    ) -> Target:
        """The workload that owns ``pod`` (pod -> ReplicaSet -> Deployment; StatefulSet, DaemonSet, Job).

        A pod that no longer exists falls back to ``workload_hint`` (the group's workload label),
        looked up as each of ``kinds`` in turn. A pod without a controller is its own target.
        Raises ``NotFound`` when neither leads anywhere.
        """
        if pod:
            try:
                obj = self.get_pod(namespace, pod)
            except NotFound:
                if not workload_hint:
                    raise
                log.info("[%s/%s] pod %s is gone; using the workload %s", namespace, workload_hint, pod, workload_hint)
            else:
                return self.owner_of(obj)
        if not workload_hint:
            raise NotFound(f"nothing to resolve in {namespace}: no pod and no workload name")
        for kind in kinds:
            try:
                self.get_object(namespace, kind, workload_hint)
            except NotFound:
                continue
            return Target(namespace, kind, workload_hint)
        raise NotFound(f"no {' or '.join(kinds)} named {workload_hint!r} in namespace {namespace!r}")

    def owner_of(self, pod: Obj) -> Target:
        """The top controller of a pod object, following at most pod -> ReplicaSet -> Deployment."""
        meta = pod["metadata"]
        namespace = meta["namespace"]
        ref = _controller_of(pod)
        if ref is None:
            return Target(namespace, "Pod", meta["name"])
        if ref.get("kind") == "ReplicaSet":
            rs = self.get_object(namespace, "ReplicaSet", ref["name"])
            top = _controller_of(rs)
            if top is not None and top.get("kind") == "Deployment":
                return Target(namespace, "Deployment", top["name"])
            return Target(namespace, "ReplicaSet", ref["name"])
        return Target(namespace, str(ref.get("kind")), str(ref["name"]))

    # -- leases (leader election; sentinel.engine.leader) ----------------------------------------

    def get_lease(self, namespace: str, name: str) -> Obj:
        """A ``coordination.k8s.io/v1`` Lease; ``NotFound`` if there is none yet."""
        api = k8s.CoordinationV1Api(self.api_client)
        return self._call(
            Call("get", "leases", namespace, name, "coordination.k8s.io"), api.read_namespaced_lease, name, namespace
        )

    def create_lease(self, namespace: str, lease: Obj) -> Obj:
        """Create a Lease; ``Conflict`` (409 AlreadyExists) when another replica created it first."""
        api = k8s.CoordinationV1Api(self.api_client)
        name = str((lease.get("metadata") or {}).get("name", ""))
        return self._call(
            Call("create", "leases", namespace, name, "coordination.k8s.io"),
            api.create_namespaced_lease,
            namespace,
            lease,
        )

    def replace_lease(self, namespace: str, lease: Obj) -> Obj:
        """PUT a Lease read earlier: its ``metadata.resourceVersion`` makes it conditional (``Conflict`` if stale)."""
        api = k8s.CoordinationV1Api(self.api_client)
        name = str(lease["metadata"]["name"])
        return self._call(
            Call("update", "leases", namespace, name, "coordination.k8s.io"),
            api.replace_namespaced_lease,
            name,
            namespace,
            lease,
        )


def delete_options(*, grace_period: int | None = None, uid: str | None = None, dry_run: bool = False) -> Obj:
    """A DeleteOptions body: grace period, uid precondition and dry-run (``dryRun: ["All"]``)."""
    body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
    if grace_period is not None:
        body["gracePeriodSeconds"] = grace_period
    if uid:
        body["preconditions"] = {"uid": uid}
    if dry_run:
        body["dryRun"] = [DRY_RUN_ALL]
    return body


def _kind(kind: str, allowed: tuple[str, ...] | None = None) -> tuple[str, str]:
    if kind not in KINDS or (allowed is not None and kind not in allowed):
        raise Invalid(f"unsupported kind {kind!r} here (expected one of {', '.join(allowed or tuple(KINDS))})")
    return KINDS[kind]
