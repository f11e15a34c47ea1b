"""Render a :class:`Notification` for each receiver and send it over httpx.

- ``webhook``: the notification as one JSON object (``kind``, ``version`` and every field).
- ``slack``: an incoming-webhook body, ``text`` (fallback) plus Block Kit ``blocks``.
- ``alertmanager``: ``POST {url}/api/v2/alerts`` with one alert, so that Alertmanager's own
  routing, grouping, silences and inhibitions apply. Its labels identify the group (they are the
  same for every event of one group); the evidence goes in annotations.

A send raises :class:`DeliveryError`; ``temporary`` ones (a transport error, a timeout, 429, 5xx)
are retried by the notifier, permanent ones (another 4xx) are not. The URL never appears in an
error message: it may itself be the secret (Slack).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from sentinel.config import DestinationConfig
from sentinel.errors import SentinelError, cap
from sentinel.notify.message import Notification

SLACK_TEXT_CHARS = 2900  # Slack: at most 3000 characters in a section's text
SLACK_HEADER_CHARS = 150


class DeliveryError(SentinelError):
    """A notification was not accepted by its receiver."""

    def __init__(self, message: str, *, temporary: bool, delay: float | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.delay = delay  # what the receiver asked for (Retry-After), when it did


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def render_webhook(n: Notification) -> Any:
    return {"kind": "kube-sentinel.notification", "version": 1, **n.to_dict()}


def _code(text: str) -> str:
    return "```" + text.replace("```", "'''") + "```"


def render_slack(n: Notification) -> Any:
    facts = [
        f"*Count*\n{n.count}",
        f"*Rate*\n{n.rate_per_minute:g}/min (5 min)",
        f"*Rule*\n{n.rule}",
        f"*Status*\n{n.status}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.headline[:SLACK_HEADER_CHARS]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _code(n.template)[:SLACK_TEXT_CHARS]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
    ]
    if n.samples:
        text = "*Samples*\n" + _code("\n".join(n.samples))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_CHARS]}})
    if n.remediation:
        r = n.remediation
        text = f"*Remediation* `{r['action']}` on `{r['target']}`: {r['result']}" + (
            " (dry run)" if r["dry_run"] else ""
        )
        if r["error"]:
            text += f"\n{r['error']}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_CHARS]}})
    if n.context:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": ("*Cluster*\n" + n.context)[:SLACK_TEXT_CHARS]}}
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{n.link}|Open in Kube Sentinel>"}]})
    return {"text": f"{n.headline}: {n.template}"[:SLACK_TEXT_CHARS], "blocks": blocks}


def alert_labels(n: Notification) -> dict[str, str]:
    group_event = not n.event.startswith("remediation")
    return {
        "alertname": "KubeSentinelErrorGroup" if group_event else "KubeSentinelRemediation",
        "group_id": n.group_id,
        "priority": n.priority,
        "namespace": n.namespace,
        "workload": n.workload,
        "container": n.container,
        "rule": n.rule,
        "source": "kube-sentinel",
    }


def render_alertmanager(n: Notification) -> Any:
    annotations = {
        "summary": n.headline,
        "event": n.event,
        "template": n.template,
        "count": str(n.count),
        "rate_per_minute": f"{n.rate_per_minute:g}",
        "samples": "\n".join(n.samples),
        "link": n.link,
    }
    if n.remediation:
        annotations["remediation"] = json.dumps(n.remediation, sort_keys=True)
    if n.context:
        annotations["context"] = n.context
    if n.escalation_reason:
        annotations["escalation_reason"] = n.escalation_reason
    alert: dict[str, Any] = {
        "labels": {k: v for k, v in alert_labels(n).items() if v},
        "annotations": annotations,
        "startsAt": _iso(n.first_seen if not n.remediation else n.time),
    }
    if n.link.startswith(("http://", "https://")):
        alert["generatorURL"] = n.link
    return [alert]


RENDER = {"webhook": render_webhook, "slack": render_slack, "alertmanager": render_alertmanager}


def endpoint(config: DestinationConfig) -> str:
    url = config.url.get_secret_value().rstrip("/")
    if config.type == "alertmanager" and not url.endswith("/api/v2/alerts"):
        url += "/api/v2/alerts"
    return url


class Destination:
    """One configured receiver: its selector settings, its renderer and its HTTP client."""

    def __init__(self, config: DestinationConfig, *, http: httpx.Client | None = None) -> None:
        self.config = config
        self.name = config.name
        self.type = config.type
        self._url = endpoint(config)
        headers = {"User-Agent": "kube-sentinel"}
        token = config.token.get_secret_value()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = http or httpx.Client(timeout=config.timeout, headers=headers, follow_redirects=False)

    def _scrub(self, text: str) -> str:
        for secret in (self._url, self.config.url.get_secret_value(), self.config.token.get_secret_value()):
            if secret:
                text = text.replace(secret, "***")
        return cap(text)

    def send(self, n: Notification) -> None:
        body = RENDER[self.type](n)
        try:
            r = self._http.post(self._url, json=body)
        except httpx.TimeoutException as err:
            raise DeliveryError(f"timed out after {self.config.timeout:g}s", temporary=True) from err
        except httpx.HTTPError as err:
            raise DeliveryError(self._scrub(f"{type(err).__name__}: {err}"), temporary=True) from err
        if r.is_success:
            return
        text = self._scrub(f"HTTP {r.status_code}: {r.text}")
        if r.status_code == 429 or r.status_code >= 500:
            delay = None
            retry_after = r.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = float(retry_after)
            raise DeliveryError(text, temporary=True, delay=delay)
        raise DeliveryError(text, temporary=False)

    def close(self) -> None:
        self._http.close()
