"""Shared fixtures: the Loki and Kubernetes-API test peers on 127.0.0.1."""

from __future__ import annotations

from tests.peers.kube import kube_peer, kube_peer_server  # noqa: F401  (fixtures)
from tests.peers.loki import loki_peer  # noqa: F401  (fixture)
from tests.store.pgserver import pg_cluster, pg_url  # noqa: F401  (fixtures)
