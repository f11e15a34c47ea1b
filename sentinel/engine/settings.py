"""Runtime-editable settings: what the console's form and ``POST /api/settings`` may change live.

A change is validated as a whole (every bad field named, nothing applied when any is bad), then
persisted in the store (``state["settings"]``) so it survives a restart, and recorded with who
made it (``state["settings_history"]``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from sentinel.config import Config
from sentinel.core.durations import parse_duration
from sentinel.errors import ConfigError

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Duration = Annotated[float, BeforeValidator(parse_duration)]


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    remediation_enabled: bool
    dry_run: bool
    max_actions_per_hour: int
    per_workload_per_hour: int
    excluded_namespaces: tuple[str, ...]
    poll_interval: float
    lookback: float
    query: str

    @classmethod
    def from_config(cls, config: Config) -> RuntimeSettings:
        r = config.remediation
        return cls(
            remediation_enabled=r.enabled,
            dry_run=r.dry_run,
            max_actions_per_hour=r.max_actions_per_hour,
            per_workload_per_hour=r.per_workload_per_hour,
            excluded_namespaces=tuple(r.excluded_namespaces),
            poll_interval=config.loki.poll_interval,
            lookback=config.loki.lookback,
            query=config.loki.query,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["excluded_namespaces"] = list(self.excluded_namespaces)
        return d


class SettingsUpdate(BaseModel):
    """A partial change; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    remediation_enabled: bool | None = None
    dry_run: bool | None = None
    max_actions_per_hour: int | None = Field(default=None, ge=0, le=10_000)
    per_workload_per_hour: int | None = Field(default=None, ge=0, le=1_000)
    excluded_namespaces: list[str] | None = None
    poll_interval: Duration | None = None
    lookback: Duration | None = None
    query: str | None = None

    @field_validator("excluded_namespaces")
    @classmethod
    def _namespaces(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        cleaned = [n.strip() for n in v if n.strip()]
        bad = [n for n in cleaned if not _NAMESPACE.match(n)]
        if bad:
            raise ValueError(f"not valid namespace names: {', '.join(bad)}")
        return sorted(set(cleaned))

    @field_validator("poll_interval")
    @classmethod
    def _interval(cls, v: float | None) -> float | None:
        if v is not None and not 5 <= v <= 3600:
            raise ValueError("must be between 5s and 1h")
        return v

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, v: float | None) -> float | None:
        if v is not None and not 10 <= v <= 7 * 86400:
            raise ValueError("must be between 10s and 7 days")
        return v

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        if v is None:
            return v
        text = v.strip()
        if not text.startswith("{") or "}" not in text:
            raise ValueError('must be a LogQL log query starting with a stream selector, like {namespace=~".+"}')
        if text.count('"') % 2:
            raise ValueError("has an unbalanced double quote")
        return text


def validate_update(data: dict[str, Any]) -> SettingsUpdate:
    """``ConfigError`` with one problem per bad field (``field: why``)."""
    if not isinstance(data, dict):
        raise ConfigError("settings: expected an object of fields")
    try:
        return SettingsUpdate.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "settings"
            msg = str(e["msg"]).removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown field"
            problems.append(f"{loc}: {msg}")
        raise ConfigError("settings: invalid change, nothing was saved", problems=problems) from None


def apply_update(current: RuntimeSettings, update: SettingsUpdate) -> tuple[RuntimeSettings, dict[str, list[Any]]]:
    """The new settings and the changes made, ``{field: [old, new]}``."""
    changes: dict[str, list[Any]] = {}
    values = current.to_dict()
    for name, value in update.model_dump(exclude_none=True).items():
        if values.get(name) != value:
            changes[name] = [values.get(name), value]
            values[name] = value
    values["excluded_namespaces"] = tuple(values["excluded_namespaces"])
    return RuntimeSettings(**values), changes


FILE_VALUES = "_file"  # in the stored overrides: the config file's value when each was made


def from_stored(base: RuntimeSettings, stored: dict[str, Any] | None) -> tuple[RuntimeSettings, list[str]]:
    """Stored console/API overrides over the file's values, and one note per decision.

    An override is dropped when the config file's value changed since it was made (the newer
    intent wins: an operator who edits config.yaml and restarts gets what the file says), or when
    it no longer validates.
    """
    if not stored:
        return base, []
    file_then = stored.get(FILE_VALUES) or {}
    now = base.to_dict()
    kept: dict[str, Any] = {}
    notes: list[str] = []
    for name, value in stored.items():
        if name not in SettingsUpdate.model_fields:
            continue
        if name in file_then and file_then[name] != now.get(name):
            notes.append(
                f"settings: config file changed {name} since the override; the file's value {now.get(name)!r} wins"
            )
            continue
        kept[name] = value
    try:
        update = validate_update(kept)
    except ConfigError as err:
        return base, [f"settings: stored overrides ignored: {err}"]
    new, changes = apply_update(base, update)
    notes.extend(
        f"settings: {name} = {new_value!r} (console/API override of {old!r} in the config file)"
        for name, (old, new_value) in changes.items()
    )
    return new, notes


def stored_overrides(
    stored: dict[str, Any] | None, changes: dict[str, list[Any]], *, file_values: RuntimeSettings
) -> dict[str, Any]:
    """The overrides to store after ``changes``, with the file's values they override."""
    out = dict(stored or {})
    file_then = dict(out.get(FILE_VALUES) or {})
    current_file = file_values.to_dict()
    for name, (_old, new) in changes.items():
        out[name] = new
        file_then[name] = current_file.get(name)
    out[FILE_VALUES] = file_then
    return out
