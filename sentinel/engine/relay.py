"""A follower's changes, relayed to the leader through the shared store's command queue.

With ``store.type: postgresql`` replicas share one database; the leader alone polls and acts. A
settings change, a breaker reset or a manual action asked on a follower is queued there
(:class:`~sentinel.store.base.CommandQueue`); the leader takes it within about a second and runs
it through the same code a local request takes (:class:`~sentinel.engine.commands.Commands`):
every safety limit, the audit row (``requested_by`` = the person "via <follower pod>"). The
follower waits a few seconds for that answer and gives it as the leader would have; when none
comes in time, :class:`Queued` says where to follow it.

The leader's side is :meth:`Commands.run_queued`; this module holds what both sides agree on:
the timings and the shapes of the answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NoReturn

from sentinel.errors import ConfigError, SafetyRefused
from sentinel.store.base import Command, CommandKind, CommandQueue

log = logging.getLogger(__name__)

COMMANDS_EVERY = 1.0  # seconds between the leader's looks at the queue
EXPIRES_AFTER = 60.0  # a command older than this when the leader sees it is refused, not run
WAIT = 5.0  # seconds a follower waits for the leader's answer before answering "queued"
STALE_AFTER = 2 * EXPIRES_AFTER  # a command "running" this long lost its leader: failed, never re-run
_POLL = 0.05


class Queued(Exception):  # noqa: N818 - an outcome, not an error: the leader has not answered yet
    """The command is queued for the leader, which has not answered within the wait."""

    def __init__(self, command: Command) -> None:
        self.command = command
        super().__init__(f"queued for the leader as command {command.id}")


class Relay:
    """A follower's side of the queue: submit, then wait (briefly) for the leader's answer."""

    def __init__(
        self,
        queue: CommandQueue,
        *,
        identity: Callable[[], str],
        clock: Callable[[], float],
        wait: float = WAIT,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self._identity = identity
        self._clock = clock
        self.wait = wait
        self._sleep = sleep
        self._monotonic = monotonic

    def ask(self, kind: CommandKind, payload: dict[str, Any], *, by: str) -> Command:
        """Queue the command and wait up to :attr:`wait` seconds; the finished command, else :class:`Queued`."""
        cmd = self.queue.submit_command(kind, payload, requested_by=by, via=self._identity(), now=self._clock())
        log.info("%s asked by %s queued for the leader as command %s", kind, by, cmd.id)
        deadline = self._monotonic() + self.wait
        while True:
            seen = self.queue.command(cmd.id)
            if seen is not None and seen.final:
                return seen
            if self._monotonic() >= deadline:
                raise Queued(seen or cmd)
            self._sleep(_POLL)


# -- the answers, as JSON in the queue and back -----------------------------------------------------


def refused(error: str, message: str, **more: Any) -> dict[str, Any]:
    return {"error": error, "message": message, **more}


def raise_refusal(cmd: Command) -> NoReturn:
    """A refused or failed command as the exception the same local request would have raised.

    ``not_found`` -> KeyError, ``invalid`` -> ConfigError (settings, naming each field) or
    ValueError (an action), anything else (follower, expired, abandoned, failed) -> SafetyRefused.
    """
    result = cmd.result or {}
    error, message = str(result.get("error", "")), str(result.get("message", "") or cmd.state)
    if error == "not_found":
        raise KeyError(result.get("key", message))
    if error == "invalid":
        problems = [str(p) for p in result.get("problems", [])] or [message]
        if cmd.kind == "settings":
            raise ConfigError(message, problems=problems)
        raise ValueError(problems[0])
    if error == "expired":
        raise SafetyRefused(message)
    if cmd.state == "failed":
        raise SafetyRefused(f"the leader ({cmd.done_by or 'unknown'}) could not run it: {message}")
    raise SafetyRefused(message)
