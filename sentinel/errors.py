"""The one exception tree of Kube Sentinel.

::

    SentinelError
    ├── ConfigError            a config or rules file (or a settings change) is invalid
    ├── SourceError            reading logs failed
    │   └── LokiError          Loki answered badly or not at all
    │       ├── LokiQueryError     400: bad LogQL, range too long ... (permanent)
    │       ├── LokiAuthError      401/403 (permanent)
    │       └── LokiUnavailable    connection error, 5xx, 429 (temporary: carries a delay)
    ├── ClusterError           a Kubernetes API call failed
    │   ├── Forbidden          403: RBAC refused (names verb and resource)
    │   ├── NotFound           404: the target is gone
    │   ├── Conflict           409: resourceVersion conflict
    │   ├── Invalid            422: the API server rejected the object
    │   ├── DisruptionBudgetRefused 429 from an eviction: a PodDisruptionBudget forbids it now
    │   └── ClusterUnavailable 5xx, timeouts, no cluster configured
    │       └── ClusterTimeout     the API server did not answer in time
    ├── StoreError             the store cannot be read or written
    └── SafetyRefused          a remediation was refused by the safety policy

Errors raised by foreign libraries are translated at the edge (the adapter that called them),
with ``raise ... from err`` and their payload capped by :func:`cap`.

Secrets: a server (or a proxy in front of it) may echo our ``Authorization`` header in its error
body. Every configured secret is registered with :func:`register_secret` when the process builds
its clients; :func:`redact` replaces it, its base64, the base64 of ``user:secret`` (HTTP Basic)
and its URL-encoded form with ``[redacted]``. Foreign text is redacted where it enters (the Loki
client), again where errors are stored or served, and :class:`RedactingFilter` redacts every log
record. The registry is process-wide on purpose: so is logging.
"""

from __future__ import annotations

import base64
import logging
import threading
from urllib.parse import quote

MAX_FOREIGN_CHARS = 256
REDACTED = "[redacted]"
_MIN_SECRET = 4  # shorter "secrets" are not redacted: replacing them everywhere would garble text

_secret_forms: tuple[str, ...] = ()
_secret_lock = threading.Lock()


def _b64(text: str) -> list[str]:
    encoded = base64.b64encode(text.encode()).decode()
    return [encoded, encoded.rstrip("=")]


def register_secret(secret: str, *, username: str = "") -> None:
    """Redact ``secret`` (and its Basic/Bearer, base64 and URL-encoded forms) from now on."""
    global _secret_forms
    if len(secret) < _MIN_SECRET:
        return
    forms = {secret, quote(secret, safe=""), *_b64(secret)}
    if username:
        forms.update(_b64(f"{username}:{secret}"))
    with _secret_lock:
        # longest first, so that a secret inside its own encoded form does not leave a tail behind
        _secret_forms = tuple(sorted(set(_secret_forms) | forms, key=len, reverse=True))


def redact(text: object) -> str:
    """``text`` with every registered secret form replaced by ``[redacted]``."""
    s = str(text)
    for form in _secret_forms:
        if form in s:
            s = s.replace(form, REDACTED)
    return s


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message (and any traceback text) of each record, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secret_forms:
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True


def cap(text: object, limit: int = MAX_FOREIGN_CHARS) -> str:
    """Shorten a foreign payload (a response body, a server message) before it is logged or stored."""
    s = str(text).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


class SentinelError(Exception):
    """Base of every error Kube Sentinel raises on purpose."""


class ConfigError(SentinelError):
    """An invalid configuration, rules file or settings change.

    ``problems`` holds one line per problem, each naming the file and the key path or rule.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message if problems is None else message + "\n  - " + "\n  - ".join(problems))


class SourceError(SentinelError):
    """Reading log lines failed."""


class LokiError(SourceError):
    """Loki answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class LokiQueryError(LokiError):
    """Loki refused the query (HTTP 400): its own message says why. Permanent."""


class LokiAuthError(LokiError):
    """Loki refused our credentials (HTTP 401/403). Permanent."""


class LokiUnavailable(LokiError):
    """A temporary failure (connection error, 5xx, 429); ``delay`` is when to try again."""

    def __init__(self, message: str, *, status: int | None = None, delay: float = 1.0) -> None:
        self.delay = delay
        super().__init__(message, status=status)


class ClusterError(SentinelError):
    """A Kubernetes API call failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class Forbidden(ClusterError):
    """403: the service account lacks a verb on a resource."""


class NotFound(ClusterError):
    """404: the object does not exist (any more)."""


class Conflict(ClusterError):
    """409: the object changed under us (resourceVersion) or already exists."""


class Invalid(ClusterError):
    """422: the API server rejected the object."""


class DisruptionBudgetRefused(ClusterError):
    """429 from ``pods/eviction``: evicting the pod now would violate a PodDisruptionBudget (never retried as a delete)."""


class ClusterUnavailable(ClusterError):
    """5xx, a timeout, or no cluster configured at all."""


class ClusterTimeout(ClusterUnavailable):
    """The API server did not answer within the client's timeout."""


class StoreError(SentinelError):
    """The store cannot be read or written."""


class SafetyRefused(SentinelError):
    """The safety policy refused a remediation; ``reason`` says which limit."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
