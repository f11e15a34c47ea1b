"""Small helpers every router shares: CSV rows, time parameters, problem answers, redaction."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from sentinel.core.durations import parse_duration
from sentinel.core.export import csv_text
from sentinel.engine.runtime import Runtime
from sentinel.errors import redact as redact_secrets

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV with format=csv"}
}


class ApiError(Exception):
    """Answered as ``{"detail": ..., "problems": [...]}`` with ``status``."""

    def __init__(self, status: int, detail: str, problems: Sequence[str] = (), headers: dict[str, str] | None = None):
        self.status = status
        self.detail = detail
        self.problems = list(problems)
        self.headers = headers
        super().__init__(detail)


def not_found(what: str, ident: str) -> ApiError:
    shown = ident if len(ident) <= 80 else ident[:79] + "…"
    return ApiError(404, f"no {what} with id {shown!r}")


# Columns holding a time (POSIX seconds in JSON): written in CSV as ISO 8601 in UTC, as the console shows.
TIME_COLUMN = re.compile(r"^(time|until)$|_(at|seen|until)$")


def iso_utc(ts: float) -> str:
    """``2026-11-28T10:46:24Z``: ISO 8601, UTC, whole seconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def csv_cell(value: Any, *, column: str = "") -> Any:
    """How one JSON value is written in CSV: null -> empty, booleans lower case, objects as JSON, and a
    time column's seconds as ISO 8601 in UTC.

    Numbers stay numbers, so that :func:`sentinel.core.export.safe_cell` leaves a negative one alone."""
    if column and TIME_COLUMN.search(column) and isinstance(value, int | float) and not isinstance(value, bool):
        return iso_utc(float(value)) if value > 0 else ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, int | float):
        return value
    return str(value)


def csv_response(model: type[BaseModel], rows: Sequence[BaseModel], *, filename: str, total: int) -> Response:
    """The rows as CSV: a header of ``model``'s fields, then one line per row, same values as JSON."""
    columns = list(model.model_fields)
    text = csv_text(
        columns, ([csv_cell(d[c], column=c) for c in columns] for d in (r.model_dump(mode="json") for r in rows))
    )
    return Response(
        text.encode("utf-8"),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Total-Count": str(total)},
    )


def parse_time(value: str | None, *, now: float, name: str) -> float | None:
    """``since``/``until``: POSIX seconds, an RFC 3339 time, or a duration ago (``15m``, ``2h``)."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or not 0 <= number <= 1e11:
            raise ApiError(422, f"invalid {name}", [f"{name}: must be POSIX seconds between 0 and 1e11"])
        return number
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        pass
    raise ApiError(
        422,
        f"invalid {name}",
        [f"{name}: expected POSIX seconds, an RFC 3339 time or a duration ago like 15m, got {cap_text(value, 60)!r}"],
    )


def cap_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def secrets_of(runtime: Runtime) -> list[str]:
    """Every configured secret value (API token, Loki password and bearer token, notification URLs and tokens)."""
    c = runtime.config
    values = [
        c.api.token.get_secret_value(),
        c.loki.password.get_secret_value(),
        c.loki.bearer_token.get_secret_value(),
    ]
    for d in c.notifications.destinations:
        values += [d.url.get_secret_value(), d.token.get_secret_value()]
    return [v for v in values if len(v) >= 4]


def redact(runtime: Runtime, text: str) -> str:
    """``text`` with any configured secret replaced by ``***`` (free text such as error messages)."""
    for secret in secrets_of(runtime):
        if secret in text:
            text = text.replace(secret, "***")
    return redact_secrets(text)  # and every registered form: base64, Basic/Bearer, URL-encoded
