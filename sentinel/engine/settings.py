"""Runtime-editable settings: what the console's form and ``POST /api/settings`` may change live.

A change is validated as a whole (every bad field named, nothing applied when any is bad), then
persisted in the store (``state["settings"]``) so it survives a restart, and recorded with who
made it (``state["settings_history"]``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from sentinel.config import Config
from sentinel.core.durations import parse_duration
from sentinel.core.policy import SafetyLimits
from sentinel.core.settings_spec import LIVE, LIVE_NAMES, SETTINGS, Setting
from sentinel.errors import ConfigError

Duration = Annotated[float, BeforeValidator(parse_duration)]


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """The live-editable settings of the settings table, in its order (checked at import)."""

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
        values = {s.live: _config_value(config, s) for s in LIVE}
        values["excluded_namespaces"] = tuple(values["excluded_namespaces"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["excluded_namespaces"] = list(self.excluded_namespaces)
        return d


if tuple(f.name for f in dataclasses.fields(RuntimeSettings)) != LIVE_NAMES:  # pragma: no cover - a coding error
    raise RuntimeError("RuntimeSettings must list the live settings of sentinel.core.settings_spec, in its order")


def _config_value(config: Config, spec: Setting) -> Any:
    return getattr(getattr(config, spec.section), spec.field)


def limits_of(config: Config, settings: RuntimeSettings) -> SafetyLimits:
    """The safety limits: each table setting with a ``limit``, live value when it is live-editable."""
    live = settings.to_dict()
    values = {s.limit: live[s.live] if s.live else _config_value(config, s) for s in SETTINGS if s.limit}
    return SafetyLimits(**values)


_TYPES: dict[str, Any] = {"bool": bool, "int": int, "float": float, "duration": Duration, "query": str}


def _checked(spec: Setting) -> Any:
    """The setting's value after its type: normalised, then checked by the table's rule."""

    def check(value: Any) -> Any:
        if spec.kind == "namespaces":
            value = sorted({str(n).strip() for n in value if str(n).strip()})
        elif spec.kind == "query":
            value = str(value).strip()
        problem = spec.problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return check


def _update_field(spec: Setting) -> Any:
    if spec.kind == "int":  # pydantic's own ge/le, as in the config file
        return (int | None, Field(default=None, ge=spec.low, le=spec.high, description=spec.doc))
    base = list[str] if spec.kind == "namespaces" else _TYPES[spec.kind]
    return (Annotated[base, AfterValidator(_checked(spec))] | None, Field(default=None, description=spec.doc))


# A partial change; unknown fields are rejected. Derived from the settings table.
SettingsUpdate: type[BaseModel] = create_model(
    "SettingsUpdate",
    __config__=ConfigDict(extra="forbid"),
    **{s.live: _update_field(s) for s in LIVE},
)


def validate_update(data: dict[str, Any]) -> BaseModel:
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


def apply_update(current: RuntimeSettings, update: BaseModel) -> tuple[RuntimeSettings, dict[str, list[Any]]]:
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
