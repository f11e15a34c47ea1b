"""``/api/commands``: what a follower queued for the leader (shared store only), and the leader's answer.

On a follower replica with ``store.type: postgresql``, a settings change, a breaker reset or a
manual action is queued in the database; the leader runs it within about a second, through the
same path as a local request. The follower answers with the leader's answer when it comes within
a few seconds, else with 202 and the command's id: follow it here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from sentinel.api.common import ApiError
from sentinel.api.deps import Queue
from sentinel.api.schemas import Problem
from sentinel.engine.relay import EXPIRES_AFTER, Queued
from sentinel.store.base import Command

router = APIRouter(prefix="/api/commands", tags=["commands"])

CommandId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$", description="the command's id")]


class CommandOut(BaseModel):
    """A queued command and, once the leader answered, its answer."""

    id: str
    kind: Literal["settings", "breaker_reset", "action"]
    state: Literal["pending", "running", "done", "refused", "failed"] = Field(
        description="pending (asked), running (taken by the leader), then done, refused or failed"
    )
    status: int | None = Field(
        description="the HTTP status the request would have had on the leader (None until it answered)"
    )
    requested_by: str
    via: str = Field(description="the follower replica it was asked on")
    requested_at: float
    taken_at: float | None
    done_at: float | None
    done_by: str = Field(description="the leader that took it")
    payload: dict[str, Any]
    result: dict[str, Any] | None = Field(
        description=(
            "the leader's answer: `changed` (settings), `was_open` (breaker_reset), `record` (action: the audit "
            "record); or `error` (not_found, invalid, refused, expired, abandoned, failed) and `message`"
        )
    )

    @classmethod
    def of(cls, cmd: Command) -> CommandOut:
        return cls(
            id=cmd.id,
            kind=cmd.kind,
            state=cmd.state,
            status=status_of(cmd),
            requested_by=cmd.requested_by,
            via=cmd.via,
            requested_at=cmd.requested_at,
            taken_at=cmd.taken_at,
            done_at=cmd.done_at,
            done_by=cmd.done_by,
            payload=cmd.payload,
            result=cmd.result,
        )


class CommandQueued(BaseModel):
    """202: queued for the leader, which has not answered yet."""

    detail: str
    id: str
    state: str
    url: str = Field(description="GET it to follow the command")


def status_of(cmd: Command) -> int | None:
    """The status the same request gets on the leader: 200, 404 (not found), 422 (invalid), 409 (refused)."""
    if not cmd.final:
        return None
    if cmd.state == "done":
        return 200
    error = (cmd.result or {}).get("error")
    return {"not_found": 404, "invalid": 422}.get(str(error), 409)


async def on_queued(request: Request, exc: Exception) -> JSONResponse:
    """The exception handler: a follower's request not answered by the leader in time becomes 202."""
    assert isinstance(exc, Queued)
    cmd = exc.command
    url = f"/api/commands/{cmd.id}"
    body = CommandQueued(
        detail=(
            f"queued for the leader: it has not answered yet; follow it at {url} "
            f"(it is refused if the leader does not see it within {EXPIRES_AFTER:.0f}s)"
        ),
        id=cmd.id,
        state=cmd.state,
        url=url,
    )
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": url})


@router.get(
    "/{command_id}",
    response_model=CommandOut,
    responses={404: {"model": Problem}},
    summary="A command a follower queued for the leader, and its answer",
    description=(
        "Only with a shared store (`store.type: postgresql`): a settings change, breaker reset or manual action "
        "asked on a follower replica is queued for the leader, which runs it through the same path as a local "
        "request (every safety limit, the audit). `state` goes pending -> running -> done | refused | failed; "
        "`status` is the HTTP status the request would have had on the leader. 404 for an unknown id, or when "
        "the store is not shared (memory, TinyDB: no queue)."
    ),
)
def get_command(queue: Queue, command_id: CommandId) -> CommandOut:
    if queue is None:
        raise ApiError(404, "no command queue: only a shared store (store.type: postgresql) has one")
    cmd = queue.command(command_id)
    if cmd is None:
        raise ApiError(404, f"no command with id {command_id!r}")
    return CommandOut.of(cmd)
