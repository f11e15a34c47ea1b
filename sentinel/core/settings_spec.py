"""The one table of settings that have bounds, a live edit or a safety limit: pure data plus its checks.

Each setting appears here once, with its type, bounds, unit, doc line and whether it is
live-editable (``live``: its name in the console form, ``POST /api/settings`` and
``RuntimeSettings``). Everything else is derived from this table:

- the config file's schema (:mod:`sentinel.config`) takes each field's default and bounds;
- the live settings (:mod:`sentinel.engine.settings`) take the live fields, their bounds and the
  Go tool's names;
- the API's settings models (:mod:`sentinel.api.schemas`) and the console form
  (:mod:`sentinel.ui.settings_form`) take the names, labels and docs;
- the safety limits (``limits_of``) take the fields that have a ``limit``.

So a bound can no longer differ between the file and a live edit: both ask :meth:`Setting.problem`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Kind = Literal["bool", "int", "float", "duration", "namespaces", "query"]


@dataclass(frozen=True, slots=True)
class Setting:
    key: str  # where it is written in config.yaml: "section.name"
    kind: Kind
    default: Any
    doc: str  # one line: what it does (shown as help in the form and the API schema)
    unit: str = ""  # "s" for durations, "actions/hour", ...
    low: float | None = None  # smallest allowed value (inclusive unless low_open)
    high: float | None = None  # largest allowed value (inclusive)
    low_open: bool = False  # the value must be more than ``low``
    live: str = ""  # its live-edit name; empty: only the config file sets it
    label: str = ""  # the console form's label
    aliases: tuple[str, ...] = ()  # the Go tool's names accepted in API bodies
    limit: str = ""  # the SafetyLimits field it feeds, if any

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def field(self) -> str:
        return self.key.split(".", 1)[1]

    def problem(self, value: Any) -> str | None:
        """Why ``value`` (already of the right type) is not allowed (``must be between 5s and 1h``), or None.

        The config file and a live edit both ask this, so they accept and refuse the same values."""
        if self.kind == "query":
            return query_problem(str(value))
        if self.kind == "namespaces":
            bad = [str(n) for n in value if not NAMESPACE.match(str(n).strip())]
            return f"not valid namespace names: {', '.join(bad)}" if bad else None
        if self.kind not in ("int", "float", "duration") or isinstance(value, bool):
            return None
        if not isinstance(value, int | float):
            return None
        low, high = self.low, self.high
        too_low = low is not None and (value <= low if self.low_open else value < low)
        too_high = high is not None and value > high
        if not (too_low or too_high):
            return None
        if low is not None and high is not None and not self.low_open:
            return f"must be between {self.show(low)} and {self.show(high)}"
        if too_low and low is not None:
            if self.low_open:
                return (
                    f"must be longer than {self.show(low)}" if self.kind == "duration" else f"must be more than {low:g}"
                )
            return f"must be at least {self.show(low)}"
        return f"must be at most {self.show(high or 0)}"

    def show(self, value: float) -> str:
        """A bound as people read it: ``5s``, ``1h``, ``7 days``, ``10000``."""
        if self.kind != "duration":
            return f"{value:g}"
        return human_duration(value)


def query_problem(text: str) -> str | None:
    """What is wrong with a LogQL log query, or None."""
    text = text.strip()
    if not text.startswith("{") or "}" not in text:
        return 'must be a LogQL log query starting with a stream selector, like {namespace=~".+"}'
    if text.count('"') % 2:
        return "has an unbalanced double quote"
    return None


def human_duration(seconds: float) -> str:
    """5 -> ``5s``, 3600 -> ``1h``, 604800 -> ``7 days``."""
    if seconds >= 86400 and seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days != 1 else ''}"
    for size, unit in ((3600, "h"), (60, "m")):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


SETTINGS: tuple[Setting, ...] = (
    # -- live-editable, in the order the console form shows them --
    Setting(
        "remediation.enabled",
        "bool",
        True,
        "off: errors are still grouped and ranked, nothing is fixed",
        live="remediation_enabled",
        label="Remediation enabled",
        aliases=("enabled", "remediationEnabled"),
        limit="enabled",
    ),
    Setting(
        "remediation.dry_run",
        "bool",
        False,
        "actions are sent with dryRun=All: the API server validates them, nothing changes",
        live="dry_run",
        label="Dry-run",
        aliases=("dryRun",),
        limit="dry_run",
    ),
    Setting(
        "remediation.max_actions_per_hour",
        "int",
        50,
        "the hourly budget over every workload",
        unit="actions/hour",
        low=0,
        high=10_000,
        live="max_actions_per_hour",
        label="Max actions per hour (all workloads)",
        aliases=("maxActionsPerHour",),
        limit="max_actions_per_hour",
    ),
    Setting(
        "remediation.per_workload_per_hour",
        "int",
        3,
        "at most this many actions per workload per hour",
        unit="actions/hour",
        low=0,
        high=1_000,
        live="per_workload_per_hour",
        label="Max actions per hour per workload",
        aliases=("perWorkloadPerHour",),
        limit="per_workload_per_hour",
    ),
    Setting(
        "remediation.excluded_namespaces",
        "namespaces",
        ("kube-system",),
        "nothing is ever done in these namespaces",
        live="excluded_namespaces",
        label="Excluded namespaces",
        aliases=("excludedNamespaces",),
        limit="excluded_namespaces",
    ),
    Setting(
        "loki.poll_interval",
        "duration",
        30.0,
        "how often Loki is read",
        unit="s",
        low=5,
        high=3600,
        live="poll_interval",
        label="Poll interval",
        aliases=("pollInterval",),
    ),
    Setting(
        "loki.lookback",
        "duration",
        300.0,
        "how far back the first poll reads (later polls resume where the last ended)",
        unit="s",
        low=10,
        high=7 * 86400,
        live="lookback",
        label="Lookback on first poll",
    ),
    Setting(
        "loki.query",
        "query",
        '{namespace=~".+"} |~ "(?i)(error|fatal|panic|exception|fail)"',
        'a LogQL log query starting with a stream selector, e.g. {namespace=~".+"} |~ "(?i)error"',
        live="query",
        label="Loki query (LogQL)",
    ),
    # -- config file only --
    Setting(
        "remediation.breaker_threshold",
        "int",
        3,
        "ineffective actions in a row that open a workload's breaker",
        low=1,
        limit="breaker_threshold",
    ),
    Setting(
        "remediation.effectiveness_window",
        "duration",
        300.0,
        "how long an action is watched before it is judged",
        unit="s",
        low=0,
        low_open=True,
        limit="effectiveness_window",
    ),
    Setting(
        "loki.max_lookback",
        "duration",
        3600.0,
        "catch-up cap after an outage",
        unit="s",
        low=0,
        low_open=True,
    ),
    Setting(
        "loki.timeout",
        "duration",
        30.0,
        "one Loki request's timeout",
        unit="s",
        low=0,
        low_open=True,
    ),
)

BY_KEY: Mapping[str, Setting] = {s.key: s for s in SETTINGS}
LIVE: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.live)
BY_LIVE: Mapping[str, Setting] = {s.live: s for s in LIVE}
LIVE_NAMES: tuple[str, ...] = tuple(s.live for s in LIVE)
DURATIONS: frozenset[str] = frozenset(s.live for s in LIVE if s.kind == "duration")
INTEGERS: frozenset[str] = frozenset(s.live for s in LIVE if s.kind == "int")


def section(name: str) -> tuple[Setting, ...]:
    """The settings of one config section (``loki``, ``remediation``)."""
    return tuple(s for s in SETTINGS if s.section == name)
