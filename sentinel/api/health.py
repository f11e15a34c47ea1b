"""``/health`` (alive), ``/ready`` (real checks, cached briefly) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import JSONResponse, Response

from sentinel.api.deps import (
    Clock,
    EngineChecks,
    Groups,
    HealthDep,
    IncidentsDep,
    NotifierDep,
    ReadinessDep,
    Redact,
    RemediatorDep,
)
from sentinel.api.schemas_state import Alive, Readiness
from sentinel.core.policy import REMEDIATOR

router = APIRouter(tags=["health"])

READY_CACHE_SECONDS = 2.0
CHECKS = ("config", "rules", "store")  # not Loki: poll health is in /api/stats and /metrics
# Shown in /ready without making it fail: a halted remediator must keep the console reachable
# through the Service, so that a person can see why and reset it.
HALTED = "halted: {reason}; no action runs until a person resets breaker 'remediator'"


class ReadyCache:
    """``runtime.ready()`` at most every few seconds, and again at once when a poll happened since."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = -1e9
        self._key: tuple[int, int, str] | None = None
        self._value: tuple[bool, dict[str, str]] = (False, {})

    def get(self, engine: EngineChecks) -> tuple[bool, dict[str, str]]:
        h = engine.health
        key = (h.polls, h.poll_errors, h.rules_error)
        with self._lock:
            if key == self._key and time.monotonic() - self._at < READY_CACHE_SECONDS:
                return self._value
        value = engine.ready()
        with self._lock:
            self._key, self._value, self._at = key, value, time.monotonic()
        return value


@router.get("/health", response_model=Alive, summary="The process is alive")
def health(clock: Clock, h: HealthDep) -> Alive:
    return Alive(status="alive", uptime=max(0.0, clock() - h.started_at))


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: the failing checks"}},
    summary="Ready: config and rules loaded, store writable (Loki is not a check: see /api/stats poll)",
    description=(
        "503 with the failing checks when not ready. `checks.remediation` says when the remediator is halted "
        "(a dry run changed the cluster): shown, but it does not fail readiness, so the console stays reachable."
    ),
)
def ready(
    request: Request,
    engine: ReadinessDep,
    remediator: RemediatorDep,
    notifier: NotifierDep,
    store: Groups,
    incidents: IncidentsDep,
    clock: Clock,
    redact: Redact,
) -> JSONResponse:
    cache: ReadyCache = request.app.state.ready_cache
    ok, problems = cache.get(engine)
    failing = {k: redact(v) for k, v in problems.items()}
    checks = {name: failing.get(name, "ok") for name in CHECKS}
    checks.update(failing)
    state = remediator.state()
    checks["remediation"] = HALTED.format(reason=redact(state.breakers[REMEDIATOR].reason)) if state.halted else "ok"
    # Informational like the remediator: a failing receiver must not take the console out of the Service.
    bad = notifier.failing()
    checks["notifications"] = (
        "; ".join(f"destination {name!r} failing: {redact(why)}" for name, why in sorted(bad.items())) or "ok"
    )
    store_health = store.health()
    # Informational too: a large store serves what it has read while the rest loads (writes wait for it).
    checks["store_load"] = store_health.loading or "ok"
    # Informational: pod states (CrashLoopBackOff, OOMKilled, ...) read from the API server, the second source.
    checks["pod_status"] = redact(incidents.pods.health(clock()))
    notices = [redact(n) for n in store_health.notices]
    body = Readiness(ready=ok, checks=checks, failing=failing, notices=notices)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
