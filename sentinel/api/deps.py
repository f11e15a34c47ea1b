"""Dependencies as ``Annotated`` aliases: the runtime, who is asking, and the write guard.

The runtime is found on the FastAPI app that handles the request (``app.state.runtime``). When the
routes are mounted elsewhere (``api_routes``), each route hands the request to that same app, so
``request.app`` is still the API's own app and these dependencies work unchanged.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal, cast

from fastapi import Depends, Header, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from sentinel.api.common import ApiError
from sentinel.engine.runtime import Runtime
from sentinel.store.base import MAX_PAGE_SIZE

DEFAULT_USER = "api"
USER_HEADER = "X-Sentinel-User"

_bearer = HTTPBearer(
    auto_error=False,
    description="api.token (KUBE_SENTINEL_API_TOKEN or api.token_file); needed by every POST and PATCH",
)


def get_runtime(conn: HTTPConnection) -> Runtime:
    return cast(Runtime, conn.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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
    runtime: RuntimeDep,
    user: User,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who may change something: a configured token, given as ``Authorization: Bearer <token>``.

    No token configured: the API is read-only (403). Missing or wrong token: 401.
    """
    expected = runtime.config.api.token.get_secret_value()
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
