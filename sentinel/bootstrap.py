"""Wiring, in one place: config -> store -> source -> cluster -> elector -> remediator -> runtime, from files.

:func:`build_runtime` is what the CLI (``run``, ``demo``), the ASGI/Streamlit entry
(:mod:`sentinel.web`) and the tests call; nothing is started (``Runtime.start`` does that).
The other builders are the adapters one at a time, for ``kube-sentinel check``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sentinel.config import Config, Loaded, LoadedRules, load_config, load_rules, resolve_rules_path
from sentinel.engine.context import ContextReader
from sentinel.engine.incidents import Incidents
from sentinel.engine.leader import LeaderElector, default_identity, default_namespace
from sentinel.engine.pipeline import Pipeline
from sentinel.engine.poll import Source
from sentinel.engine.rulebook import restore_fingerprinter
from sentinel.engine.runtime import Runtime
from sentinel.engine.settings import RuntimeSettings, limits_of
from sentinel.errors import SentinelError, SourceError, cap, register_secret
from sentinel.remediation.cluster import Cluster
from sentinel.remediation.ledger import SafetyLedger
from sentinel.remediation.owners import OwnerResolver
from sentinel.remediation.remediator import Remediator
from sentinel.sources.loki import LokiClient, build_http_client
from sentinel.store import open_store
from sentinel.store.base import Store

log = logging.getLogger(__name__)


def build_runtime(
    config_path: str | Path,
    rules_path: str | Path | None = None,
    *,
    source: Source | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    env: Mapping[str, str] | None = None,
    cluster: Cluster | None = None,
) -> Runtime:
    """Everything from the files; ``ConfigError`` if either file is invalid (nothing started).

    ``cluster``: an adapter already built (the tests' Kubernetes peer) instead of ``kubernetes:``'s.
    """
    loaded: Loaded = load_config(config_path, env=env)
    config = loaded.config
    for secret in (config.loki.password, config.loki.bearer_token, config.api.token):
        register_secret(secret.get_secret_value(), username=config.loki.username)
    rpath = resolve_rules_path(config_path, config, str(rules_path) if rules_path else None)
    rules: LoadedRules = load_rules(rpath)
    base_dir = Path(config_path).parent
    store = store or open_store(
        config, base_dir=Path.cwd() if not Path(config.store.path).is_absolute() else base_dir, clock=clock
    )
    warnings = loaded.warnings + rules.warnings + list(getattr(store, "startup_warnings", []))
    for w in warnings:
        log.warning("%s", w)
    stopping = threading.Event()
    if source is None:
        source = build_loki_source(config, sleep=interruptible_sleep(stopping))
    cluster, cluster_state = (cluster, "connected") if cluster is not None else build_cluster(config)
    ledger = SafetyLedger(store, clock=clock)
    remediator = Remediator(
        store=store,
        cluster=cluster,
        limits=limits_of(config, RuntimeSettings.from_config(config)),
        clock=clock,
        ledger=ledger,
    )
    # Workloads from ownerReferences; pod-name rules when the API cannot say (or there is no cluster).
    pipeline = Pipeline(
        rules=rules.ruleset,
        fingerprinter=restore_fingerprinter(store),
        workloads=OwnerResolver(cluster).workload_of if cluster is not None else None,
    )
    elector = None
    if config.leader_election.enabled:
        if cluster is None:
            log.warning("leader_election is enabled but no cluster can hold the Lease: this replica leads alone")
        else:
            elector = build_elector(config, cluster, store=store, ledger=ledger, clock=clock, env=env)
    incidents = Incidents.build(config, cluster, store=store, clock=clock, no_cluster=cluster_state)
    return Runtime(
        config=config,
        pipeline=pipeline,
        store=store,
        source=source,
        remediator=remediator,
        context=ContextReader(cluster, no_cluster=cluster_state, clock=clock),
        config_path=str(config_path),
        rules_path=str(rpath),
        clock=clock,
        warnings=warnings,
        stopping=stopping,
        cluster_state=cluster_state,
        elector=elector,
        incidents=incidents,
    )


def interruptible_sleep(stopping: threading.Event) -> Callable[[float], None]:
    """A backoff sleep that ends the poll at once when the process is stopping (SIGTERM)."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise SourceError("stopping: poll abandoned during a retry wait")

    return sleep


def build_loki_source(config: Config, *, sleep: Callable[[float], None] = time.sleep) -> LokiClient:
    """The Loki client ``loki:`` describes (its secrets registered for redaction first)."""
    lc = config.loki
    register_secret(lc.password.get_secret_value(), username=lc.username)
    register_secret(lc.bearer_token.get_secret_value())
    http = build_http_client(
        url=lc.url,
        tenant_id=lc.tenant_id,
        username=lc.username,
        password=lc.password.get_secret_value(),
        bearer_token=lc.bearer_token.get_secret_value(),
        tls_verify=lc.tls_verify,
        ca_file=lc.ca_file,
        timeout=lc.timeout,
    )
    return LokiClient(http, query=lc.query, page_limit=lc.page_limit, sleep=sleep)


def build_elector(
    config: Config,
    cluster: Cluster,
    *,
    store: Store,
    ledger: SafetyLedger,
    clock: Callable[[], float],
    env: Mapping[str, str] | None = None,
) -> LeaderElector:
    """The Lease elector from ``leader_election:``; identity and namespace default to the downward API's."""
    le = config.leader_election
    env = os.environ if env is None else env
    return LeaderElector(
        cluster,
        namespace=le.namespace or default_namespace(env),
        name=le.lease_name,
        identity=le.identity or default_identity(env),
        lease_duration=le.lease_duration,
        renew_every=le.renew_every,
        store=store,
        ledger=ledger,
        clock=clock,
    )


def build_cluster(config: Config) -> tuple[Cluster | None, str]:
    """The Kubernetes adapter, or None (remediation then runs as dry-run) and why."""
    kc = config.kubernetes
    if kc.in_cluster and not kc.kubeconfig and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        why = (
            "kubernetes.in_cluster is true but this process does not run in a pod; "
            "set kubernetes.kubeconfig to act on a cluster from outside"
        )
        log.warning("no Kubernetes cluster: %s; remediation runs as dry-run", why)
        return None, f"not configured: {why}"
    try:
        cluster = Cluster.from_config(
            in_cluster=kc.in_cluster, kubeconfig=kc.kubeconfig or None, context=kc.context or None
        )
    except SentinelError as err:
        log.warning("no Kubernetes cluster: %s; remediation runs as dry-run", err)
        return None, f"not configured: {cap(err)}"
    return cluster, "connected"
