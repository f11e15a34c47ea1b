"""Shared fixtures: the Loki and Kubernetes-API test peers, and small builders."""

from __future__ import annotations

from tests.peers.loki import loki_peer  # noqa: F401  (fixture)
