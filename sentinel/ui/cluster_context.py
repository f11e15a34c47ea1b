"""The detail page's "In the cluster" section: the group's Kubernetes context as rows and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sentinel.engine.context import ContextReader
from sentinel.ui.format import duration

PAGE_WAIT = 2.0  # seconds the page waits for a first read of the context

REASONS = {
    "no cluster": "No cluster is configured",
    "forbidden": "The API server refused the read (RBAC)",
    "timeout": "The API server did not answer in time",
    "unavailable": "The API server is unavailable",
    "being read": "Being read; reload in a moment",
}


@dataclass
class ContextView:
    ok: bool
    headline: str
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def context_view(reader: ContextReader, namespace: str, workload: str) -> ContextView:
    ctx = reader.get(namespace, workload, wait=PAGE_WAIT)
    if ctx.get("state") != "ok":
        reason = str(ctx.get("reason", ""))
        return ContextView(False, f"{REASONS.get(reason, reason)}: {ctx.get('detail', '')}")
    parts = []
    if ctx.get("kind"):
        r = ctx["replicas"]
        parts.append(
            f"{ctx['kind']} · {r['ready']}/{r['desired']} ready · {r['current']} current · rollout {ctx['rollout']}"
        )
        if ctx.get("revision"):
            parts.append(f"revision {ctx['revision']}")
    else:
        parts.append("No Deployment, StatefulSet or DaemonSet of this name: pods matched by name")
    pods = [
        {
            "pod": p["name"],
            "phase": p["phase"] + (" (terminating)" if p["terminating"] else ""),
            "ready": p["ready"],
            "restarts": p["restarts"],
            "waiting": p["waiting"],
            "last termination": (
                f"{p['last_termination'].get('reason', '')} (exit {p['last_termination'].get('exit_code')})"
                if p["last_termination"]
                else ""
            ),
            "node": p["node"],
        }
        for p in ctx.get("pods") or []
    ]
    events = [
        {
            "reason": e["reason"],
            "object": e["object"],
            "count": e["count"],
            "age": "" if e["age"] is None else duration(e["age"]),
            "message": e["message"],
        }
        for e in ctx.get("events") or []
    ]
    notes = [f"{part}: {why}" for part, why in sorted((ctx.get("errors") or {}).items())]
    if ctx.get("pods_total", 0) > len(pods):
        notes.append(f"The first {len(pods)} of {ctx['pods_total']} pods.")
    if ctx.get("stale"):
        notes.append("Cached context older than its time to live; a fresh read is on its way.")
    return ContextView(True, " · ".join(parts), pods, events, notes)
