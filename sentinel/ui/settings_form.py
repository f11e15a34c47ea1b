"""The settings form's logic: from widget values to a change, and from a refused change to per-field errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sentinel.core.durations import format_duration
from sentinel.core.settings_spec import DURATIONS, INTEGERS, LIVE, LIVE_NAMES
from sentinel.engine.settings import RuntimeSettings

FIELDS = LIVE_NAMES
LABELS = {**{s.live: s.label for s in LIVE}, "token": "Admin token"}
HELP = {
    s.live: s.doc + (f": {s.show(s.low)} to {s.show(s.high)}" if s.low is not None and s.high is not None else "")
    for s in LIVE
}


def form_values(settings: RuntimeSettings) -> dict[str, Any]:
    """What the form shows for the current settings (durations as ``30s``, namespaces comma-separated)."""
    return {
        "remediation_enabled": settings.remediation_enabled,
        "dry_run": settings.dry_run,
        "max_actions_per_hour": settings.max_actions_per_hour,
        "per_workload_per_hour": settings.per_workload_per_hour,
        "excluded_namespaces": ", ".join(settings.excluded_namespaces),
        "poll_interval": format_duration(settings.poll_interval),
        "lookback": format_duration(settings.lookback),
        "query": settings.query,
    }


def change_of(settings: RuntimeSettings, values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the fields the person changed, in the shape ``Runtime.update_settings`` takes."""
    shown = form_values(settings)
    out: dict[str, Any] = {}
    for name in FIELDS:
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, str):
            value = value.strip()
        if value == shown[name]:
            continue
        if name == "excluded_namespaces":
            names = [n.strip() for n in str(value).replace("\n", ",").split(",") if n.strip()]
            if sorted(set(names)) == sorted(settings.excluded_namespaces):
                continue
            out[name] = names
        elif name in INTEGERS:
            out[name] = int(value) if isinstance(value, int | float) and float(value).is_integer() else value
        else:
            out[name] = value
    return out


def field_errors(problems: list[str]) -> dict[str, list[str]]:
    """``["poll_interval: must be between 5s and 1h", ...]`` -> ``{"poll_interval": [...]}``."""
    out: dict[str, list[str]] = {}
    for p in problems:
        name, _, why = p.partition(":")
        key = name.strip().split(".")[0]
        if key not in FIELDS:
            key, why = "_form", p
        out.setdefault(key, []).append(why.strip() or p)
    return out


def _comparable(name: str, value: Any) -> Any:
    if name == "excluded_namespaces":
        return sorted(set(value))
    return value


def overrides(current: RuntimeSettings, from_file: RuntimeSettings) -> list[dict[str, str]]:
    """The settings whose live value differs from the config file's: a console or API change overrides it.

    One row per field, in form order: ``{"setting", "config file", "in effect"}``.
    """
    now, file = current.to_dict(), from_file.to_dict()
    return [
        {"setting": LABELS.get(name, name), "config file": _show(name, file[name]), "in effect": _show(name, now[name])}
        for name in FIELDS
        if _comparable(name, now[name]) != _comparable(name, file[name])
    ]


def history_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per changed field, newest first; ``confirmed`` names the risky changes the person confirmed."""
    rows = []
    for e in reversed(entries):
        confirmed = "; ".join(str(c) for c in e.get("confirmed") or [])
        for name, (old, new) in (e.get("changes") or {}).items():
            rows.append(
                {
                    "time": float(e.get("time", 0.0)),
                    "by": e.get("by", ""),
                    "setting": LABELS.get(name, name),
                    "from": _show(name, old),
                    "to": _show(name, new),
                    "confirmed": confirmed,
                }
            )
    return rows


def risky_changes(current: RuntimeSettings, file: RuntimeSettings, change: Mapping[str, Any]) -> list[str]:
    """The parts of ``change`` a person must confirm by name: dry-run turned off, the hourly budget raised
    above its default (config.yaml's value), an excluded namespace removed. Pure; bad values are left to
    the validation that follows."""
    out: list[str] = []
    if change.get("dry_run") is False and current.dry_run:
        out.append("turn dry-run OFF: actions will change the cluster")
    budget = change.get("max_actions_per_hour")
    if isinstance(budget, int) and not isinstance(budget, bool):
        if budget > file.max_actions_per_hour and budget > current.max_actions_per_hour:
            out.append(f"raise the hourly budget to {budget}, above its default of {file.max_actions_per_hour}")
    names = change.get("excluded_namespaces")
    if isinstance(names, list):
        removed = sorted(set(current.excluded_namespaces) - {str(n).strip() for n in names})
        if removed:
            out.append(f"stop excluding namespace{'s' if len(removed) > 1 else ''} {', '.join(removed)}")
    return out


def _show(name: str, value: Any) -> str:
    if name in DURATIONS and isinstance(value, int | float):
        return format_duration(float(value))
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)
