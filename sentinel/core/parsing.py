"""From a raw log entry to message, level and workload. Pure.

Understands JSON lines (``message``, ``msg``, ``error``, ``err``, ``log``), logfmt, klog
(``E0115 10:23:45.123456  1 file.go:12] msg``), Go panics, Python tracebacks and plain text.
The workload comes from labels (an owner label, ``app``, ``app.kubernetes.io/name``) or from the
pod name with its ReplicaSet, StatefulSet, Job, CronJob or DaemonSet suffix removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from sentinel.core.model import LogEntry, Parsed

MESSAGE_KEYS = ("message", "msg", "error", "err", "log", "text")
LEVEL_KEYS = ("level", "lvl", "severity", "loglevel", "log.level")
WORKLOAD_LABELS = (
    "workload",
    "owner",
    "app_kubernetes_io_name",
    "app.kubernetes.io/name",
    "app",
    "k8s_app",
    "k8s-app",
)
MAX_MESSAGE = 2000

_KLOG = re.compile(r"^([IWEF])(\d{4}) \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [^\]]+\] ?(.*)$", re.S)
_KLOG_LEVEL = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}
_LOGFMT_PAIR = re.compile(r'([\w.\-/]+)=("(?:[^"\\]|\\.)*"|\S*)')
_LEVEL_WORD = re.compile(r"\b(fatal|panic|critical|crit|error|err|exception|warn(?:ing)?|fail(?:ed|ure)?)\b", re.I)
_LEADING_TS = re.compile(
    r"^(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| [A-Z]{3,4})?\]?\s+)"
)
# A process id or thread tag after the timestamp, as PostgreSQL writes it: "[4802] ".
_LEADING_PID = re.compile(r"^\[\d+\]\s+")
_LEADING_LEVEL = re.compile(r"^\[?(FATAL|PANIC|CRITICAL|ERROR|ERR|WARN|WARNING|INFO|DEBUG)\]?:?\s+", re.I)

# Pod name suffixes, most specific first. Kubernetes draws ReplicaSet hashes and pod suffixes
# from an alphabet without vowels (k8s.io/apimachinery/pkg/util/rand), so "exporter" is no hash.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")
_CRONJOB_POD = re.compile(rf"^(.+)-\d{{8,10}}-{_SAFE}{{5}}$")
_STATEFULSET_POD = re.compile(r"^(.+)-\d+$")
_SHORT_SUFFIX_POD = re.compile(rf"^(.+)-{_SAFE}{{5}}$")


def workload_from_pod(pod: str) -> str:
    """``api-7d4b9c8f6d-xk2lp`` -> ``api``; ``db-0`` -> ``db``; ``node-exporter-x7k2p`` -> ``node-exporter``."""
    if not pod:
        return ""
    for pattern in (_CRONJOB_POD, _DEPLOYMENT_POD, _STATEFULSET_POD, _SHORT_SUFFIX_POD):
        m = pattern.match(pod)
        if m:
            return m.group(1)
    return pod


def workload_of(labels: Mapping[str, str]) -> str:
    for key in WORKLOAD_LABELS:
        value = labels.get(key)
        if value:
            return value
    pod = labels.get("pod") or labels.get("pod_name") or ""
    if pod:
        return workload_from_pod(pod)
    return labels.get("job") or labels.get("service_name") or labels.get("container") or ""


def _normalise_level(value: str) -> str:
    v = value.strip().lower()
    if v in ("err", "eror"):
        return "error"
    if v in ("warn",):
        return "warning"
    if v in ("crit", "critical", "emerg", "alert"):
        return "fatal"
    return v


def _level_from_text(text: str) -> str:
    m = _LEVEL_WORD.search(text)
    if not m:
        return "unknown"
    word = m.group(1).lower()
    if word in ("fatal", "panic", "critical", "crit"):
        return "fatal"
    if word.startswith("warn"):
        return "warning"
    return "error"


def _from_json(line: str) -> tuple[str, str] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    message = ""
    for key in MESSAGE_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            message = value
            break
    if not message:
        return None
    err = obj.get("error") or obj.get("err")
    if isinstance(err, str) and err and err != message:
        message = f"{message}: {err}"
    level = ""
    for key in LEVEL_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            level = _normalise_level(value)
            break
    return message, level


def _from_logfmt(line: str) -> tuple[str, str] | None:
    if "msg=" not in line and "message=" not in line:
        return None
    pairs = {k: v[1:-1].replace('\\"', '"') if v.startswith('"') else v for k, v in _LOGFMT_PAIR.findall(line)}
    message = pairs.get("msg") or pairs.get("message") or ""
    if not message or ("level" not in pairs and "lvl" not in pairs and "ts" not in pairs and "time" not in pairs):
        return None
    err = pairs.get("err") or pairs.get("error")
    if err and err != message:
        message = f"{message}: {err}"
    return message, _normalise_level(pairs.get("level") or pairs.get("lvl") or "")


def parse_message(line: str) -> tuple[str, str]:
    """(message, level) of one raw line."""
    text = line.strip()
    if text.startswith("{"):
        found = _from_json(text)
        if found:
            msg, level = found
            return msg[:MAX_MESSAGE], level or _level_from_text(msg)
    first = text[:1]
    if first in _KLOG_LEVEL and text[1:5].isdigit():
        m = _KLOG.match(text)
        if m:
            return m.group(3)[:MAX_MESSAGE], _KLOG_LEVEL[m.group(1)]
    found = _from_logfmt(text)
    if found:
        msg, level = found
        return msg[:MAX_MESSAGE], level or _level_from_text(msg)
    if (first.isdigit() and text[4:5] == "-") or (first == "[" and text[5:6] == "-"):  # a leading date
        stripped = _LEADING_TS.sub("", text, count=1)
        if stripped != text:
            stripped = _LEADING_PID.sub("", stripped, count=1)
        text = stripped
    if text.startswith(("panic:", "fatal error:")):
        return text[:MAX_MESSAGE], "fatal"
    lm = _LEADING_LEVEL.match(text)
    if lm:
        return text[lm.end() :][:MAX_MESSAGE], _normalise_level(lm.group(1))
    if text.startswith("Traceback (most recent call last)"):
        return text[:MAX_MESSAGE], "error"
    return text[:MAX_MESSAGE], _level_from_text(text)


def parse(entry: LogEntry) -> Parsed:
    labels = entry.labels
    message, level = parse_message(entry.line)
    detected = labels.get("detected_level") or labels.get("level")
    if level == "unknown" and detected:
        level = _normalise_level(detected)
    return Parsed(
        message=message,
        level=level,
        namespace=labels.get("namespace") or labels.get("k8s_namespace_name") or "",
        pod=labels.get("pod") or labels.get("pod_name") or "",
        container=labels.get("container") or labels.get("container_name") or "",
        workload=workload_of(labels),
    )
