"""APScheduler wiring: the poll job (one at a time, coalesced), maintenance, rules reload, and the lease.

With a shared store (PostgreSQL) and leader election, the ``commands`` job runs every second what
followers queued (settings changes, breaker resets, manual actions); it does nothing on a follower.

With leader election, the ``lease`` job renews (or tries to take) the Lease every ``renew_every``,
in its own thread so a long poll never delays a renewal; the poll job skips its turn on a follower.

A failed poll is retried sooner than the interval, with exponential backoff (capped at the
interval); a successful poll puts the job back on its interval. Changing the poll interval in
the settings reschedules the job without a restart.

The scheduler knows the engine only as :class:`Jobs` (what it runs and when), so nothing here
imports the runtime.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from sentinel.errors import SentinelError

log = logging.getLogger(__name__)

MAINTENANCE_EVERY = 60.0
RULES_CHECK_EVERY = 10.0


MAX_RETRY_AFTER = 3600.0


def retry_delay(failures: int, *, interval: float, retry_after: float | None) -> float:
    """Seconds until the next poll after ``failures`` failed ones: exponential backoff capped at the
    poll interval, but never sooner than Loki's own ``Retry-After`` (itself capped at an hour)."""
    backoff = min(interval, 2.0 ** min(failures, 10))
    if retry_after is not None:
        return max(backoff, min(retry_after, MAX_RETRY_AFTER))
    return backoff


class PollOutcome(Protocol):
    """What the scheduler needs to know of a poll: whether it worked, and when Loki wants the next."""

    @property
    def ok(self) -> bool: ...

    @property
    def retry_after(self) -> float | None: ...


class Jobs(Protocol):
    """The engine's periodic work, as the scheduler runs it."""

    def scheduled_poll(self) -> PollOutcome | None:
        """One poll, or None when this replica does not poll now (a follower, or stopping)."""
        ...

    def maintain(self) -> None: ...

    def reload_rules(self) -> object: ...

    def lease_tick(self) -> bool: ...

    def lease_every(self) -> float | None:
        """Seconds between lease rounds; None without leader election."""
        ...

    def run_commands(self) -> object:
        """On the leader: run the commands followers queued in a shared store."""
        ...

    def commands_every(self) -> float | None:
        """Seconds between looks at the command queue; None without one."""
        ...


class Scheduler:
    def __init__(self, jobs: Jobs, *, poll_interval: float) -> None:
        self.jobs = jobs
        self._sched = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        self._interval = poll_interval
        self._failures = 0

    def start(self) -> None:
        now = datetime.now()
        self._sched.add_job(self._poll, IntervalTrigger(seconds=self._interval), id="poll", next_run_time=now)
        self._sched.add_job(
            self.jobs.maintain,
            IntervalTrigger(seconds=MAINTENANCE_EVERY),
            id="maintain",
            next_run_time=now + timedelta(seconds=MAINTENANCE_EVERY),
        )
        self._sched.add_job(self._reload, IntervalTrigger(seconds=RULES_CHECK_EVERY), id="rules-reload")
        lease_every = self.jobs.lease_every()
        if lease_every is not None:  # the runtime ran the first round itself, before this
            self._sched.add_job(
                self.jobs.lease_tick,
                IntervalTrigger(seconds=lease_every),
                id="lease",
                next_run_time=now + timedelta(seconds=lease_every),
            )
        commands_every = self.jobs.commands_every()
        if commands_every is not None:
            self._sched.add_job(self._commands, IntervalTrigger(seconds=commands_every), id="commands")
        self._sched.start()
        log.info("scheduler started: poll every %.0fs", self._interval)

    def _poll(self) -> None:
        result = self.jobs.scheduled_poll()
        if result is None:
            return
        if result.ok:
            if self._failures:
                self._failures = 0
                self._sched.reschedule_job("poll", trigger=IntervalTrigger(seconds=self._interval))
            return
        self._failures += 1
        delay = retry_delay(self._failures, interval=self._interval, retry_after=result.retry_after)
        log.info("next poll in %.0fs after %d failed poll(s)", delay, self._failures)
        self._sched.modify_job("poll", next_run_time=datetime.now() + timedelta(seconds=delay))

    def _reload(self) -> None:
        self.jobs.reload_rules()

    def _commands(self) -> None:
        try:
            self.jobs.run_commands()
        except SentinelError as err:  # the database is away: the next round tries again
            log.warning("command queue: %s", err)

    def set_poll_interval(self, seconds: float) -> None:
        self._interval = seconds
        self._sched.reschedule_job("poll", trigger=IntervalTrigger(seconds=seconds))
        log.info("poll interval is now %.0fs", seconds)

    def job_interval(self, job_id: str) -> float:
        """Seconds between runs of job ``job_id`` ("poll", "maintain", "rules-reload", "lease", "commands"), as scheduled."""
        job = self._sched.get_job(job_id)
        if job is None:
            raise KeyError(job_id)
        trigger = job.trigger
        assert isinstance(trigger, IntervalTrigger)
        return float(trigger.interval.total_seconds())

    def run_now(self) -> None:
        self._sched.modify_job("poll", next_run_time=datetime.now())

    def shutdown(self) -> None:
        """Stop scheduling; the runtime then waits for a running poll through its poll lock."""
        self._sched.shutdown(wait=False)
