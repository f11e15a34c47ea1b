"""Loki's answers as values: its JSON typed where it comes from, streams parsed into entries, selectors.

Pure (no HTTP; :mod:`sentinel.sources.loki` is the client that fetches): :func:`parse_streams`
turns a ``query_range`` body into :class:`~sentinel.core.model.LogEntry` values, coercing label
values that are not strings (numbers, booleans) and refusing streams whose labels cannot be
(objects, lists, null), both counted in a :class:`FetchReport`; :func:`split_selector` and
:func:`exact_selector` take LogQL selectors apart and build one per stream.
"""

from __future__ import annotations

import json
import logging
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from types import MappingProxyType
from typing import Any, Final, TypedDict

import orjson

from sentinel.core.model import LogEntry
from sentinel.errors import LokiError, cap

log = logging.getLogger(__name__)

LABEL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- Loki's JSON (not ours: typed where it comes from) ------------------------------------------


class LokiStream(TypedDict):
    stream: dict[str, str]
    values: list[list[Any]]  # [ts_ns: str, line: str] or [ts_ns, line, {structuredMetadata...}]


class LokiStreamsData(TypedDict, total=False):
    resultType: str
    result: list[LokiStream]
    stats: dict[str, Any]
    encodingFlags: list[str]


class LokiQueryResponse(TypedDict):
    status: str
    data: LokiStreamsData


# --- what a fetch could not read as lines ---------------------------------------------------------


@dataclass(slots=True)
class FetchReport:
    """What one :meth:`LokiClient.fetch` counted besides the lines it returned."""

    unread: dict[str, int] = field(default_factory=dict)  # stream labels (Loki's text form) -> lines
    unresolved: int = 0  # saturated nanoseconds whose size could not be measured exactly
    refused_lines: int = 0  # lines of streams whose labels are not strings and cannot be made strings
    coerced_labels: int = 0  # label values of streams that were coerced to strings

    @property
    def unread_lines(self) -> int:
        return sum(self.unread.values())


def label_text(labels: Mapping[str, str]) -> str:
    """``{a="x", b="y"}``: a stream's labels the way Loki prints them (sorted)."""
    return "{" + ", ".join(f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)) + "}"


def coerce_labels(raw: object, report: FetchReport | None) -> dict[str, str] | None:
    """Labels of strings: numbers and booleans become strings; None if the labels cannot be used."""
    if not isinstance(raw, dict):
        return None
    out: dict[str, str] = {}
    for k, v in raw.items():
        if type(v) is str:
            out[k] = v
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, int | float):
            out[k] = json.dumps(v)
        else:
            return None
        if type(v) is not str and report is not None:
            report.coerced_labels += 1
    return out


def split_selector(query: str) -> tuple[str, str]:
    """``{...}`` and the pipeline after it; ``ValueError`` if the query does not start with a selector."""
    text = query.strip()
    if not text.startswith("{"):
        raise ValueError("the query does not start with a stream selector")
    quote = ""
    i = 1
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in '"`':
            quote = ch
        elif ch == "}":
            return text[: i + 1], text[i + 1 :]
        i += 1
    raise ValueError("the stream selector is not closed")


def exact_selector(labels: Mapping[str, str], absent: frozenset[str] = frozenset()) -> str:
    """A selector for exactly this stream: its labels, and ``name=""`` for labels it does not have."""
    parts = [f"{k}={json.dumps(labels[k], ensure_ascii=False)}" for k in sorted(labels)]
    parts += [f'{k}=""' for k in sorted(absent - labels.keys())]
    return "{" + ", ".join(parts) + "}"


# --- response parsing (the hot path) --------------------------------------------------------------


def parse_streams(body: bytes, report: FetchReport | None = None) -> list[LogEntry]:
    """Decode a ``query_range`` streams body into entries of all streams merged in time order.

    Entries of one stream share one read-only label mapping. Raises :class:`LokiError` naming what
    was wrong when the body is not JSON or not Loki's streams shape. Label values that are not
    strings are coerced or their stream refused (counted in ``report``).

    The body is decoded by orjson (twice json's speed). A body it refuses (NaN, lone surrogates,
    a byte-order mark...), one whose labels or timestamps hold numbers (orjson reads an integer
    beyond 64 bits as a float, and a label's text is its JSON) and one of the wrong shape are decoded by json,
    so the result and every error are exactly json's.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _entries(_decode(body), report)
    try:
        return _entries(doc, report, fast=True)
    except (_Inexact, LokiError):  # a shape error is also told as json reads the body
        return _entries(_decode(body), report)


class _Inexact(Exception):
    """A label value or a timestamp that is not a string was decoded by orjson: decode the body again with json."""


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nesting deeper than the stack
        raise LokiError(f"Loki answered with a body that is not JSON ({cap(err)}): {cap(body[:200])}") from err


def _entries(doc: Any, report: FetchReport | None, *, fast: bool = False) -> list[LogEntry]:
    try:
        data = doc["data"]
        if doc["status"] != "success" or data["resultType"] != "streams":
            raise LokiError(_describe_shape_problem(doc))
        entries: list[LogEntry] = []
        extend = entries.extend
        # LogEntry is a named tuple: built from a tuple without its Python-level __new__
        make = partial(tuple.__new__, LogEntry)
        for stream in data["result"]:
            raw = stream["stream"]
            # Type checks by str.join, a C loop that refuses anything but strings (a third cheaper
            # than collecting the types in a set).
            if type(raw) is not dict or not _all_str(raw.values()):
                if fast:
                    raise _Inexact
                fixed = coerce_labels(raw, report)  # the slow path: once per stream, never per line
                if fixed is None:
                    values = stream["values"]
                    if type(values) is not list:
                        raise TypeError("values")
                    if report is not None:
                        report.refused_lines += len(values)
                    log.warning("loki stream refused: its labels are not an object of strings: %s", cap(repr(raw), 200))
                    continue
                raw = fixed
            labels = MappingProxyType(raw)
            # Per stream, in C loops (map, zip, itemgetter): a Python loop per entry costs twice as much.
            values = stream["values"]
            lines = list(map(_line_of, values))
            if not _all_str(lines):
                raise TypeError("line")
            stamps = list(map(_ts_of, values))
            if fast and not _all_str(stamps):
                raise _Inexact  # a number: orjson reads an integer beyond 64 bits as a float, json exactly
            extend(map(make, zip(map(int, stamps), repeat(labels, len(lines)), lines, strict=True)))
    except (LokiError, _Inexact):
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:  # 1e400: infinity
        raise LokiError(_describe_shape_problem(doc)) from err
    # Each stream is already in order: timsort merges the sorted runs in linear-ish time.
    entries.sort(key=ts_key)
    return entries


ts_key = operator.itemgetter(0)  # LogEntry.ts_ns


def _all_str(values: Iterable[object]) -> bool:
    try:
        "".join(values)  # type: ignore[arg-type]  # the check itself: str.join refuses what is not a string
    except TypeError:
        return False
    return True


_ts_of, _line_of = operator.itemgetter(0), operator.itemgetter(1)  # of Loki's [ts, line, ...]


def _describe_shape_problem(doc: object) -> str:
    """Name the first thing in ``doc`` that is not Loki's streams shape (slow path, errors only)."""
    prefix = "Loki answered with an unexpected shape: "
    if not isinstance(doc, dict):
        return prefix + f"top level is {type(doc).__name__}, expected an object"
    if doc.get("status") != "success":
        return prefix + f"status is {cap(repr(doc.get('status')), 40)}, expected 'success'"
    data = doc.get("data")
    if not isinstance(data, dict):
        return prefix + "'data' is missing or not an object"
    if data.get("resultType") != "streams":
        return prefix + (
            f"data.resultType is {cap(repr(data.get('resultType')), 40)}, expected 'streams' "
            "(a metric query cannot be read as log lines)"
        )
    result = data.get("result")
    if not isinstance(result, list):
        return prefix + "data.result is missing or not a list"
    for i, stream in enumerate(result):
        where = f"data.result[{i}]"
        if not isinstance(stream, dict):
            return prefix + f"{where} is not an object"
        labels = stream.get("stream")
        if not isinstance(labels, dict):
            return prefix + f"{where}.stream is missing or not an object"
        values = stream.get("values")
        if not isinstance(values, list):
            return prefix + f"{where}.values is missing or not a list"
        for j, value in enumerate(values):
            vwhere = f"{where}.values[{j}]"
            if not isinstance(value, list) or len(value) < 2:
                return prefix + f"{vwhere} is not a [timestamp, line] pair"
            ts, line = value[0], value[1]
            if not isinstance(ts, str) or not ts.isdigit():
                return prefix + f"{vwhere}[0] is {cap(repr(ts), 40)}, expected a nanosecond timestamp string"
            if not isinstance(line, str):
                return prefix + f"{vwhere}[1] is {type(line).__name__}, expected a string"
    return prefix + "unknown problem"
