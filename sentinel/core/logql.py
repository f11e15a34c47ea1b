"""The way out to the raw logs: a LogQL query that selects one error group's lines, and a Grafana
Explore link for it. Pure.

The stream selector names the group's namespace, its container, and its pods: the workload's name
followed by one of the pod-name suffixes :func:`sentinel.core.parsing.workload_from_pod` removes
(or, when the workload came from a label, the group's known pod names). The line filter is one RE2
regex of the template's constant parts in order (``<*>`` becomes ``.*``, whitespace ``\\s+``, a quote
may be JSON-escaped), so a line Loki returns is a line of this group, whatever its variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import quote

from sentinel.core.fingerprint import VAR
from sentinel.core.model import ErrorGroup
from sentinel.core.parsing import workload_from_pod

# The pod-name suffixes parsing.workload_from_pod removes (ReplicaSet, CronJob, StatefulSet, short).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
POD_SUFFIX = rf"(-{_SAFE}{{6,10}}-{_SAFE}{{5}}|-[0-9]{{8,10}}-{_SAFE}{{5}}|-[0-9]+|-{_SAFE}{{5}})?"
_RE_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")
MIN_PIECE = 3  # constant parts shorter than this say nothing (": ", "=") and are left to the selector


def re2_literal(text: str) -> str:
    """``text`` as a regex matching itself, in the syntax RE2 and Python share (punctuation only)."""
    return _RE_SPECIAL.sub(r"\\\1", text)


def go_string(text: str) -> str:
    """A LogQL (Go) double-quoted string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def pod_regex(workload: str, pods: Sequence[str]) -> str:
    """The workload's pods: its name with a pod suffix; the known pods when that would miss one."""
    if workload and all(workload_from_pod(p) == workload for p in pods):
        return re2_literal(workload) + POD_SUFFIX
    return "|".join(re2_literal(p) for p in sorted(set(pods)))


def line_regex(template: str) -> str:
    """The template's constant parts, in order, as one regex (``""`` when nothing constant is left)."""
    parts = []
    for piece in template.split(VAR):
        words = [re2_literal(w).replace('"', '\\\\?"') for w in piece.split()]
        if words and len(" ".join(piece.split())) >= MIN_PIECE:
            parts.append(r"\s+".join(words))
    return ".*".join(parts)


def group_query(*, namespace: str, workload: str, container: str, pods: Sequence[str], template: str) -> str:
    """``{namespace="shop", container="app", pod=~"checkout(-…)?"} |~ "failed to reserve\\s+…"``."""
    matchers = []
    if namespace:
        matchers.append(f"namespace={go_string(namespace)}")
    if container:
        matchers.append(f"container={go_string(container)}")
    pod = pod_regex(workload, pods) if (workload or pods) else ""
    if pod:
        matchers.append(f"pod=~{go_string(pod)}")
    if not matchers:
        matchers.append('namespace=~".+"')
    query = "{" + ", ".join(matchers) + "}"
    line = line_regex(template)
    return f"{query} |~ {go_string(line)}" if line else query


def for_group(g: ErrorGroup) -> str:
    """The query that selects ``g``'s lines."""
    return group_query(
        namespace=g.namespace, workload=g.workload, container=g.container, pods=list(g.pods), template=g.template
    )


def explore_url(grafana_url: str, datasource_uid: str, query: str, *, range_from: str = "now-6h") -> str:
    """Grafana Explore (schemaVersion 1 ``panes``) with ``query`` on the Loki datasource ``datasource_uid``."""
    datasource = {"type": "loki", "uid": datasource_uid}
    panes = {
        "ks": {
            "datasource": datasource_uid,
            "queries": [{"refId": "A", "expr": query, "queryType": "range", "datasource": datasource}],
            "range": {"from": range_from, "to": "now"},
        }
    }
    encoded = quote(json.dumps(panes, separators=(",", ":")), safe="")
    return f"{grafana_url.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={encoded}"
