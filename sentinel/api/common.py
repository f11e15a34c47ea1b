"""Small helpers every router shares: CSV rows, time parameters, problem answers, redaction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from starlette.responses import Response

from sentinel.config import Config
from sentinel.core.durations import parse_duration
from sentinel.errors import redact as redact_secrets
from sentinel.views.export import csv_cell as csv_cell  # re-exported: the API's CSV cells

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


def csv_response(text: str, *, filename: str, total: int) -> Response:
    """CSV text (from :mod:`sentinel.views.export`) as a download; ``X-Total-Count`` is the rows' count."""
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


def secrets_of(c: Config) -> list[str]:
    """Every configured secret value (API token, Loki password and bearer token, notification URLs and tokens)."""
    values = [
        c.api.token.get_secret_value(),
        c.loki.password.get_secret_value(),
        c.loki.bearer_token.get_secret_value(),
    ]
    for d in c.notifications.destinations:
        values += [d.url.get_secret_value(), d.token.get_secret_value()]
    return [v for v in values if len(v) >= 4]


def redact(config: Config, text: str) -> str:
    """``text`` with any configured secret replaced by ``***`` (free text such as error messages)."""
    for secret in secrets_of(config):
        if secret in text:
            text = text.replace(secret, "***")
    return redact_secrets(text)  # and every registered form: base64, Basic/Bearer, URL-encoded
