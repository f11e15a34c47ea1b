"""Shared pieces of the remediation tests: a fake clock, the peer, a cluster on it, groups, a remediator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sentinel.core.model import ErrorGroup, Priority
from sentinel.core.policy import SafetyLimits
from sentinel.remediation.cluster import Cluster
from sentinel.remediation.remediator import Remediator
from sentinel.store.memory import MemoryStore
from tests.peers import kube
from tests.peers.kube import KubePeer

# until tests/conftest.py registers them for every test
kube_peer, kube_peer_server = kube.kube_peer, kube.kube_peer_server

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def peer(kube_peer: KubePeer, clock: FakeClock) -> KubePeer:
    kube_peer.clock = clock
    return kube_peer


@pytest.fixture
def cluster(peer: KubePeer) -> Iterator[Cluster]:
    c = Cluster.for_host(peer.url, peer.token, timeout=1.0)
    yield c
    c.close()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make_group(
    *, namespace: str = "demo", workload: str = "web", pods: list[str] | None = None, gid: str = "", **kw: Any
) -> ErrorGroup:
    return ErrorGroup(
        id=gid or f"g-{namespace}-{workload}",
        namespace=namespace,
        workload=workload,
        container="nginx",
        template="connection refused to <*>",
        rule="crashloop",
        priority=Priority.P1,
        base_priority=Priority.P1,
        count=10,
        first_seen=START - 600,
        last_seen=START,
        pods=list(pods or []),
        pod_count=len(pods or []),
        **kw,
    )


RemediatorFactory = Callable[..., Remediator]


@pytest.fixture
def make_remediator(store: MemoryStore, cluster: Cluster, clock: FakeClock) -> RemediatorFactory:
    def build(*, limits: SafetyLimits | None = None, cluster_: Cluster | None | str = "peer", **kw: Any) -> Remediator:
        return Remediator(
            store=kw.pop("store", store),
            cluster=cluster if cluster_ == "peer" else cluster_,  # type: ignore[arg-type]
            limits=limits or SafetyLimits(excluded_namespaces=frozenset({"kube-system"})),
            clock=clock,
        )

    return build
