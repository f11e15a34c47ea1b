"""Checks on what a store file holds before it becomes a domain value.

A file written by this program always passes; one edited by hand, written by an older or broken
version, or damaged on disk fails with :class:`BadRecord`, whose message names the file, the
record and the field (``groups/s0007.g3.json: group "a": field "count" must be an integer, got
str``), never a traceback from deep inside a constructor.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from sentinel.core.model import MINUTE_LIMIT, ErrorGroup, Priority, RemediationRecord, Result, Status

_PRIORITIES = {p.value for p in Priority}
_STATUSES = {s.value for s in Status}
_RESULTS = {r.value for r in Result}


class BadRecord(ValueError):
    """A stored record whose shape or types are wrong: the message names where and which field."""


def _kind(value: object) -> str:
    return type(value).__name__


def _int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _num(value: object) -> bool:
    t = type(value)
    return t is float or t is int or (isinstance(value, int | float) and not isinstance(value, bool))


def _strs(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


_GROUP_REQUIRED: dict[str, str] = {
    "id": "str",
    "namespace": "str",
    "workload": "str",
    "container": "str",
    "template": "str",
    "rule": "str",
    "priority": "priority",
    "count": "int",
    "first_seen": "num",
    "last_seen": "num",
}
_GROUP_OPTIONAL: dict[str, str] = {
    "base_priority": "priority",
    "pods": "strs",
    "pod_count": "int",
    "samples": "strs",
    "minute_counts": "minutes",
    "status": "status",
    "status_changed_at": "num",
    "status_by": "str",
    "status_reason": "str",
    "snooze_until": "num?",
    "snooze_until_count": "int?",
    "escalated": "bool",
    "escalation_reason": "str",
    "impact": "num",
    "remediations": "int",
    "last_remediation_at": "num?",
    "level": "str",
    "template_key": "str",
    "last_pod": "str",
}
_RECORD_REQUIRED: dict[str, str] = {
    "id": "str",
    "time": "num",
    "group_id": "str",
    "rule": "str",
    "action": "str",
    "namespace": "str",
    "kind": "str",
    "name": "str",
}
_RECORD_OPTIONAL: dict[str, str] = {
    "params": "dict",
    "decision": "str",
    "reason": "str",
    "dry_run": "bool",
    "result": "result",
    "error": "str",
    "duration_ms": "num",
    "requested_by": "str",
    "changes": "dict",
    "effective": "bool?",
    "workload": "str",
}


def _minutes(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    if not value:
        return True
    for k in value:  # digits with an optional minus, nothing else that int() would take
        if type(k) is not str or not k.isascii() or not (k.isdigit() or (k[:1] == "-" and k[1:].isdigit())):
            return False
    counts = value.values()
    if not all(type(v) is int or _int(v) for v in counts):
        return False
    minutes = list(map(int, value))
    return (
        -MINUTE_LIMIT < min(minutes)
        and max(minutes) < MINUTE_LIMIT
        and -MINUTE_LIMIT < min(counts)
        and max(counts) < MINUTE_LIMIT
    )


# kind -> (does a value fit, what the message says it must be)
_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_int, "an integer"),
    "num": (_num, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "strs": (_strs, "a list of strings"),
    "dict": (lambda v: isinstance(v, dict), "an object"),
    "priority": (lambda v: v in _PRIORITIES, "one of P1, P2, P3, P4"),
    "status": (lambda v: v in _STATUSES, "one of " + ", ".join(sorted(_STATUSES))),
    "result": (lambda v: v in _RESULTS, "one of " + ", ".join(sorted(_RESULTS))),
    "minutes": (_minutes, "an object of minute -> integer count (each within +-2**62)"),
}


def _problem(kind: str, value: object) -> str | None:
    """None when ``value`` is of ``kind``, else what is wrong with it."""
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    fits, want = _KINDS[kind]
    ok = fits(value)
    if ok:
        return None
    shown = repr(value) if isinstance(value, str | int | float | bool) or value is None else _kind(value)
    return f"must be {want}, got {cap_repr(shown)}"


def cap_repr(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


Compiled = tuple[tuple[str, bool, Callable[[object], bool], str], ...]


def _compile(table: Mapping[str, str]) -> Compiled:
    """(field, may be null, does a value fit, kind) for each field: the checks of a load run per record."""
    return tuple((name, kind.endswith("?"), _KINDS[kind.rstrip("?")][0], kind) for name, kind in table.items())


_MISSING = object()


def _check(doc: object, required: Compiled, optional: Compiled, what: str, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRecord(f"{where}: a {what} must be an object, got {_kind(doc)}")

    def fail(name: str, problem: str) -> BadRecord:
        label = f"{what} {doc.get('id')!r}" if isinstance(doc.get("id"), str) else what
        return BadRecord(f"{where}: {label}: field {name!r} {problem}")

    get = doc.get
    for name, nullable, fits, kind in required:
        v = get(name, _MISSING)
        if v is _MISSING:
            raise fail(name, "is missing")
        if not (fits(v) or (nullable and v is None)):
            raise fail(name, _problem(kind, v) or "is not valid")
    for name, nullable, fits, kind in optional:
        v = get(name, _MISSING)
        if v is not _MISSING and not (fits(v) or (nullable and v is None)):
            raise fail(name, _problem(kind, v) or "is not valid")
    return doc


_GROUP_CHECKS = (_compile(_GROUP_REQUIRED), _compile(_GROUP_OPTIONAL))
_RECORD_CHECKS = (_compile(_RECORD_REQUIRED), _compile(_RECORD_OPTIONAL))


def group_from_doc(doc: object, *, where: str) -> ErrorGroup:
    """An ``ErrorGroup`` from a stored document, or :class:`BadRecord` naming the field."""
    return ErrorGroup.from_dict(_check(doc, _GROUP_CHECKS[0], _GROUP_CHECKS[1], "group", where))


# The text fields of an audit record that repeat across records (names, rules, decisions): kept once each.
_SHARED_RECORD_TEXT = (
    "rule",
    "action",
    "namespace",
    "kind",
    "name",
    "decision",
    "reason",
    "requested_by",
    "workload",
    "reason_code",
)


def compact_record(r: RemediationRecord) -> RemediationRecord:
    """Share the strings that many records repeat (one copy each, as groups do): tens of MiB at 50k records."""
    for name in _SHARED_RECORD_TEXT:
        value = getattr(r, name)
        if type(value) is str:
            setattr(r, name, sys.intern(value))
    return r


def record_from_doc(doc: object, *, where: str) -> RemediationRecord:
    """A ``RemediationRecord`` from a stored document, or :class:`BadRecord` naming the field."""
    return compact_record(
        RemediationRecord.from_dict(_check(doc, _RECORD_CHECKS[0], _RECORD_CHECKS[1], "remediation record", where))
    )


def check_cursor(value: object, *, where: str) -> int | None:
    if value is None or _int(value):
        return value  # type: ignore[return-value]
    raise BadRecord(f"{where}: field 'cursor' must be an integer (nanoseconds) or null, got {cap_repr(repr(value))}")


def check_state(name: str, value: object, *, where: str) -> dict[str, Any]:
    """A stored state entry: always an object; the counters the engine sums must be integers."""
    if not isinstance(value, dict):
        raise BadRecord(f"{where}: state {name!r} must be an object, got {_kind(value)}")
    if name == "rule_hits":
        for rule, n in value.items():
            if not _int(n):
                raise BadRecord(
                    f"{where}: state 'rule_hits': field {rule!r} must be an integer, got {cap_repr(repr(n))}"
                )
    return value


def check_aliases(value: object, *, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRecord(f"{where}: field 'group_aliases' must be an object of string -> string")
    return value
