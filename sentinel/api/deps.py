"""Dependencies as ``Annotated`` aliases: what each route needs, who is asking, and the write guard.

Routes ask for the narrow part they use (``Groups``, ``Commands``, ``HealthDep``, ``LiveSettings``,
...), never the whole runtime; only this module reaches into it. The runtime is found on the
FastAPI app that handles the request (``app.state.runtime``). When the routes are mounted
elsewhere (``api_routes``), each route hands the request to that same app, so ``request.app`` is
still the API's own app and these dependencies work unchanged.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Literal, cast

from fastapi import Depends, Header, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from sentinel.api.common import ApiError, redact
from sentinel.config import Config
from sentinel.engine.context import ContextReader
from sentinel.engine.events import EventBus
from sentinel.engine.health import Health
from sentinel.engine.incidents import Incidents
from sentinel.engine.pipeline import Pipeline
from sentinel.engine.runtime import Runtime
from sentinel.notify.notifier import Notifier
from sentinel.remediation.remediator import Remediator
from sentinel.store.base import MAX_PAGE_SIZE, CommandQueue, Store, command_queue
from sentinel.views.ports import Commands, RulesView, SettingsPort
from sentinel.views.ports import EngineChecks as EngineChecks  # re-exported: routes type their helpers with it

DEFAULT_USER = "api"
USER_HEADER = "X-Sentinel-User"

_bearer = HTTPBearer(
    auto_error=False,
    description="api.token (KUBE_SENTINEL_API_TOKEN or api.token_file); needed by every POST and PATCH",
)


def get_runtime(conn: HTTPConnection) -> Runtime:
    return cast(Runtime, conn.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]  # for this module and the metrics collector only


# -- the narrow parts routes depend on ----------------------------------------------------------


def _store(runtime: RuntimeDep) -> Store:
    return runtime.store


def _clock(runtime: RuntimeDep) -> Callable[[], float]:
    return runtime.clock


def _config(runtime: RuntimeDep) -> Config:
    return runtime.config


def _health(runtime: RuntimeDep) -> Health:
    return runtime.health


def _remediator(runtime: RuntimeDep) -> Remediator:
    return runtime.remediator


def _events(runtime: RuntimeDep) -> EventBus:
    return runtime.events


def _notifier(runtime: RuntimeDep) -> Notifier:
    return runtime.notifier


def _pipeline(runtime: RuntimeDep) -> Pipeline:
    return runtime.pipeline  # per request: a rules reload replaces it


def _context(runtime: RuntimeDep) -> ContextReader:
    return runtime.context


def _incidents(runtime: RuntimeDep) -> Incidents:
    return runtime.incidents  # per request: the demo swaps in a recorded cluster


def _redactor(runtime: RuntimeDep) -> Callable[[str], str]:
    config = runtime.config
    return lambda text: redact(config, text)


def _queue(runtime: RuntimeDep) -> CommandQueue | None:
    """The shared store's command queue (a follower's changes, run by the leader), None when not shared."""
    return command_queue(runtime.store)


def _read_only(runtime: RuntimeDep) -> bool:
    return not runtime.config.api.token.get_secret_value()


Groups = Annotated[Store, Depends(_store)]  # groups, records and state, read through sentinel.views
Clock = Annotated[Callable[[], float], Depends(_clock)]
ConfigDep = Annotated[Config, Depends(_config)]
HealthDep = Annotated[Health, Depends(_health)]
RemediatorDep = Annotated[Remediator, Depends(_remediator)]
Events = Annotated[EventBus, Depends(_events)]
NotifierDep = Annotated[Notifier, Depends(_notifier)]
PipelineDep = Annotated[Pipeline, Depends(_pipeline)]
ClusterContext = Annotated[ContextReader, Depends(_context)]
IncidentsDep = Annotated[Incidents, Depends(_incidents)]  # rollouts and pod status of groups
Redact = Annotated[Callable[[str], str], Depends(_redactor)]  # free text with configured secrets as ***
Queue = Annotated[CommandQueue | None, Depends(_queue)]
ReadOnly = Annotated[bool, Depends(_read_only)]
CommandsDep = Annotated[Commands, Depends(get_runtime)]
LiveSettings = Annotated[SettingsPort, Depends(get_runtime)]
ReadinessDep = Annotated[EngineChecks, Depends(get_runtime)]
Rules = Annotated[RulesView, Depends(get_runtime)]


def get_user(
    x_sentinel_user: Annotated[
        str | None,
        Header(
            max_length=100,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="who makes the change, recorded in the audit (default: api)",
        ),
    ] = None,
) -> str:
    name = (x_sentinel_user or "").strip()
    return name or DEFAULT_USER


User = Annotated[str, Depends(get_user)]


def require_writer(
    config: ConfigDep,
    user: User,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who may change something: a configured token, given as ``Authorization: Bearer <token>``.

    No token configured: the API is read-only (403). Missing or wrong token: 401.
    """
    expected = config.api.token.get_secret_value()
    if not expected:
        raise ApiError(
            403,
            "the API is read-only: no api.token is configured "
            "(set KUBE_SENTINEL_API_TOKEN or api.token_file to allow changes)",
        )
    challenge = {"WWW-Authenticate": 'Bearer realm="kube-sentinel"'}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "this call changes state: send Authorization: Bearer <api token>", headers=challenge)
    if not hmac.compare_digest(credentials.credentials.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(401, "invalid API token", headers=challenge)
    return user


Writer = Annotated[str, Depends(require_writer)]


# -- query parameters shared by the list endpoints ---------------------------------------------

Name = Annotated[str | None, Query(max_length=253)]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"rows per page, at most {MAX_PAGE_SIZE}")]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv (the same rows)")]
Since = Annotated[
    str | None,
    Query(max_length=64, description="a time: POSIX seconds, RFC 3339, or a duration ago (15m, 2h)"),
]
