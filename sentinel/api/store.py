"""``/api/store``: the store's write health and its startup notices, and acknowledging them.

A store file that could not be read at start is moved aside and the store starts empty; the
notice saying so (and where the old file is) stays on /ready, /metrics and the console until a
person acknowledges it here or in the console.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from sentinel.api.deps import Groups, Writer
from sentinel.api.schemas import Problem
from sentinel.api.schemas_state import StoreAcknowledged

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/store", tags=["store"])


@router.post(
    "/acknowledge",
    response_model=StoreAcknowledged,
    responses={401: {"model": Problem}, 403: {"model": Problem}},
    summary="Acknowledge the store's startup notices",
    description="Clears the notices listed under `notices` in /ready (and `kube_sentinel_store_started_empty`).",
)
def acknowledge(store: Groups, who: Writer) -> StoreAcknowledged:
    n = store.acknowledge_notices(by=who)
    log.info("store notices acknowledged by %s: %d", who, n)
    return StoreAcknowledged(acknowledged=n)
