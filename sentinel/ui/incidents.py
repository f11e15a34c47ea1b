"""incidents: what the console shows of deploy correlation and pod status (queue filter, detail lines)."""

from __future__ import annotations

from typing import Any

from sentinel.core.model import ErrorGroup
from sentinel.engine.incidents import Incidents
from sentinel.ui.format import duration, md, when

SOURCE_LABELS = {"logs": "logs (Loki)", "cluster": "cluster (pod status)", "both": "logs and cluster"}
REASONS = {
    "no cluster": "No cluster is configured",
    "forbidden": "The API server refused the read (RBAC)",
    "timeout": "The API server did not answer in time",
    "unavailable": "The API server is unavailable",
    "being read": "Being read; reload in a moment",
    "not a Deployment or StatefulSet": "Not a Deployment or StatefulSet: no revisions to correlate",
}
PAGE_WAIT = 2.0


def rollout_lines(incidents: Incidents, g: ErrorGroup) -> tuple[bool, list[str]]:
    """(known, Markdown lines) for the detail page: "new since revision 7, image cart:1.4.2, 3 min after the rollout".

    Everything read from the cluster or the logs (images, hashes, names in details) is escaped."""
    r: dict[str, Any] = incidents.rollout_of(g, wait=PAGE_WAIT)
    if r.get("state") != "ok":
        reason = str(r.get("reason", ""))
        detail = str(r.get("detail", ""))
        return False, [md(f"{REASONS.get(reason, reason)}{': ' + detail if detail else ''}")]
    bold = "**" if r.get("new_since_rollout") else ""
    lines = [f"{bold}{md(r['summary'])}{bold}"]
    if r.get("rollout_at"):
        lines.append(md(f"{r['kind']} revision {r['revision']} rolled out {when(r['rollout_at'])}"))
    if r.get("current_revision") not in (None, r.get("revision")):
        lines.append(md(f"revision {r['current_revision']} runs now"))
    if r.get("seen"):
        lines.append(md("seen in pod templates: " + ", ".join(r["seen"])))
    if r.get("after_rollout") is not None and r["after_rollout"] >= 0:
        lines.append(md(f"first occurrence {duration(r['after_rollout'])} after the rollout"))
    return True, lines


def source_label(incidents: Incidents, g: ErrorGroup) -> str:
    return SOURCE_LABELS[incidents.source_of(g)]
