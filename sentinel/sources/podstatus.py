"""Pod status as a second source of errors: a periodic, paginated pod list read into pod states.

One scan lists the pods (every namespace, or the configured ones) a page at a time: ``limit``
and the server's ``continue`` token until it gives none (recorded: ``list_pods_page1_limit2``,
``list_pods_page2_continue``). A scan that fails part way raises and is dropped whole: what was
counted is decided only from complete scans. The states themselves are read by
:func:`sentinel.core.podstatus.pod_states`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from sentinel.core.podstatus import PodState, pod_states
from sentinel.errors import SourceError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_PAGES = 1000  # a scan that needs more pages than this stops with an error (a token that never ends)


class PodPages(Protocol):
    def list_pods_page(self, namespace: str, *, limit: int, continue_token: str = "") -> Obj: ...


@dataclass(slots=True)
class Scan:
    """One complete pod list: the states found, the pods (by uid) that exist, and how many pages it took."""

    states: list[PodState] = field(default_factory=list)
    uids: set[str] = field(default_factory=set)
    pods: int = 0
    pages: int = 0


class PodStatusSource:
    """Lists pods page by page through ``lister`` (the Kubernetes adapter) and reads their states."""

    def __init__(self, lister: PodPages, *, namespaces: tuple[str, ...] = (), page_limit: int = 500) -> None:
        self.lister = lister
        self.namespaces = tuple(namespaces) or ("",)  # "": every namespace
        self.page_limit = page_limit

    def scan(self) -> Scan:
        """Every pod of the namespaces; raises ``ClusterError`` (or ``SourceError``) if any page fails."""
        out = Scan()
        for ns in self.namespaces:
            token = ""
            while True:
                page = self.lister.list_pods_page(ns, limit=self.page_limit, continue_token=token)
                out.pages += 1
                for pod in page.get("items") or []:
                    meta = pod.get("metadata") or {}
                    if not meta.get("namespace") and ns:
                        pod = {**pod, "metadata": {**meta, "namespace": ns}}
                    out.pods += 1
                    out.uids.add(str(meta.get("uid") or meta.get("name", "")))
                    out.states.extend(pod_states(pod))
                token = str((page.get("metadata") or {}).get("continue") or "")
                if not token:
                    break
                if out.pages >= MAX_PAGES:
                    raise SourceError(
                        f"pod list of {ns or 'all namespaces'}: more than {MAX_PAGES} pages; scan dropped"
                    )
        log.info("pod status: %d pods in %d pages, %d states", out.pods, out.pages, len(out.states))
        return out
