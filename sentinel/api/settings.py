"""``/api/settings``: the runtime-editable settings; a change is validated whole, persisted, applied live."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from sentinel.api.commands import CommandQueued
from sentinel.api.common import ApiError
from sentinel.api.deps import LiveSettings, ReadOnly, Writer
from sentinel.api.schemas import Problem
from sentinel.api.schemas_state import (
    SettingsHistoryEntry,
    SettingsIn,
    SettingsOut,
    SettingsResult,
    SettingsView,
    canonical_settings,
)
from sentinel.errors import ConfigError, SafetyRefused

router = APIRouter(prefix="/api/settings", tags=["settings"])

HISTORY = 50


@router.get("", response_model=SettingsView, summary="The runtime-editable settings and who changed them")
def get_settings(live: LiveSettings, read_only: ReadOnly) -> SettingsView:
    history = live.settings_history()[-HISTORY:][::-1]
    return SettingsView(
        settings=SettingsOut.of(live.settings),
        read_only=read_only,
        history=[SettingsHistoryEntry.model_validate(e) for e in history],
    )


@router.post(
    "",
    response_model=SettingsResult,
    responses={
        202: {"model": CommandQueued, "description": "a follower's change, queued: the leader has not answered yet"},
        401: {"model": Problem},
        403: {"model": Problem},
        409: {"model": Problem},
    },
    summary="Change settings",
    description=(
        "Every field is optional; the change is validated as a whole: any bad field gives 422 naming each "
        "one, and nothing is saved. A valid change is persisted, applied at once and recorded with who made it. "
        "Durations are seconds or Go-style strings (30s, 5m). The Go tool's names are accepted as aliases: "
        "`enabled` (remediation_enabled), `dryRun`, `maxActionsPerHour`, `perWorkloadPerHour`, "
        "`excludedNamespaces`, `pollInterval`. On a follower replica with a shared store "
        "(`store.type: postgresql`) the leader applies the change (recorded as `<user> via <follower>`) and "
        "this is its answer, 422 naming the bad fields included; 202 with the queued command to follow at "
        "`GET /api/commands/{id}` when it has not answered within a few seconds; 409 when it refused the "
        "change (expired: asked more than 60 s before it saw it). With a store that is not shared, a "
        "follower answers 409 (change them on the leader)."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SettingsIn.model_json_schema()}},
        }
    },
)
def change_settings(
    live: LiveSettings, who: Writer, body: Annotated[dict[str, Any], Body(description="see SettingsIn")]
) -> SettingsResult:
    try:
        change = canonical_settings({k: v for k, v in body.items() if v is not None})
    except ValueError as err:
        raise ApiError(422, "invalid settings change, nothing was saved", err.args[0]) from None
    try:
        changed = live.update_settings(change, by=who)
    except ConfigError as err:
        raise ApiError(422, "invalid settings change, nothing was saved", err.problems) from None
    except SafetyRefused as err:
        raise ApiError(409, err.reason) from None
    return SettingsResult(changed=changed, by=who, settings=SettingsOut.of(live.settings))
