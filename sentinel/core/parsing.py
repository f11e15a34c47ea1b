"""From a raw log entry to message, level and workload. Pure, and linear in the line's length.

Understands JSON lines (``message``, ``msg``, ``error``, ``err``, ``log``; Kubernetes events as an
event exporter writes them), logfmt, klog (``E0115 10:23:45.123456  1 file.go:12] msg``), Go panics,
Java stack traces, Python tracebacks and plain text.

Multi-line entries (one Loki entry holding a whole trace) give one message: the head line plus the
exception type and message (Python's last line, Java's first exception and its last ``Caused by:``),
never the frames, whose addresses and line numbers change from build to build.

Every step is a bounded number of passes at C speed (``str`` methods, ``json``, RE2), so a 1 MB
line costs milliseconds whatever it holds; no Python regex runs over more than a short head.

The workload is the pod's top-level owner as its name shows it: a Deployment (the ReplicaSet hash
and the pod suffix removed, so it is the same across rollouts), a StatefulSet (the ordinal
removed), a DaemonSet or Job (the suffix removed), a CronJob (the run's scheduled time removed too)
and a static pod's component (``kube-scheduler-<node>`` -> ``kube-scheduler``). Labels such as
``app`` are hints, used only when no pod name is known: a canary and its stable Deployment often
share ``app=web``. ``sentinel.remediation.owners`` resolves the owner through ``ownerReferences``
when a cluster is reachable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import orjson
import re2

from sentinel.core.fingerprint import zero_digits
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
POD_LABELS = ("pod", "pod_name", "k8s_pod_name")
NODE_LABELS = ("node_name", "nodename", "node", "k8s_node_name")
# Components the kubelet runs as static pods, named ``<component>-<node name>``.
STATIC_COMPONENTS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "cloud-controller-manager",
    "etcd",
    "kube-proxy",
    "kube-vip",
)
LEVEL_WORDS = ("fatal", "error", "warning", "info", "debug", "trace", "notice")  # spellings looked up first
MAX_MESSAGE = 2000
HEAD = 4096  # Python regexes only ever see this much of a line

_KLOG = re.compile(r"^([IWEF])(\d{4}) \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [^\]\n]{1,512}\] ?")
_KLOG_LEVEL = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}
# RE2: a linear scan whatever the text; on UTF-8 bytes (the wrapper's str path converts offsets).
_LEVEL_WORDS = r"\b(fatal|panic|critical|crit|error|err|exception|warn(?:ing)?|fail(?:ed|ure)?)\b"
_LEVEL_WORD = re2.compile(b"(?i)" + _LEVEL_WORDS.encode())
_LEVEL_WORD_SHORT = re.compile(_LEVEL_WORDS, re.I | re.A)  # cheaper on a short text; ASCII \\b as RE2
_LEADING_TS = re.compile(
    r"^(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| [A-Z]{3,4})?\]?\s+)"
)
# A process id or thread tag after the timestamp, as PostgreSQL writes it: "[4802] ".
_LEADING_PID = re.compile(r"^\[\d+\]\s+")
# PostgreSQL's informational severities (src/backend/utils/error/elog.c), upper case only.
_PG_INFO = re.compile(r"^(NOTICE|LOG|INFO|DETAIL|HINT|STATEMENT|CONTEXT):\s+")
_LEADING_LEVEL = re.compile(r"^\[?(FATAL|PANIC|CRITICAL|ERROR|ERR|WARN|WARNING|INFO|DEBUG)\]?(?::\s*|\s+)", re.I)

# Multi-line entries: which lines are exceptions (kept) rather than frames (dropped).
_JAVA_EXCEPTION = re.compile(
    r"^(?:Caused by: |Exception in thread \"[^\"\n]{0,200}\" )?([\w$]+(?:\.[\w$]+)+(?:Exception|Error|Throwable)\b[^\n]{0,300})"
)
_PY_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]{0,200}(?:Error|Exception|Exit|Interrupt|Warning|Failure)\b[^\n]{0,300})")

# Pod name suffixes, most specific first. Kubernetes draws ReplicaSet hashes and pod suffixes
# from an alphabet without vowels (k8s.io/apimachinery/pkg/util/rand), so "exporter" is no hash.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$")
_CRONJOB_POD = re.compile(rf"^(.+)-\d{{8,10}}-{_SAFE}{{5}}$")
_STATEFULSET_POD = re.compile(r"^(.+)-\d+$")
_SHORT_SUFFIX_POD = re.compile(rf"^(.+)-{_SAFE}{{5}}$")
_MAX_POD_NAME = 253


def workload_from_pod(pod: str, *, node: str = "", namespace: str = "") -> str:
    """The pod's top-level owner as its name shows it.

    ``api-7d4b9c8f6d-xk2lp`` -> ``api`` (Deployment); ``db-0`` -> ``db`` (StatefulSet);
    ``node-exporter-x7k2p`` -> ``node-exporter`` (DaemonSet); ``backup-28391160-m4x7q`` ->
    ``backup`` (CronJob, not the Job run); ``kube-scheduler-cp-1`` -> ``kube-scheduler`` (a static
    pod, named after its node: ``node`` when known, else the known control-plane components in
    ``kube-system`` or an unknown namespace).
    """
    if not pod or len(pod) > _MAX_POD_NAME:
        return pod[:_MAX_POD_NAME]
    if node and len(pod) > len(node) + 1 and pod.endswith("-" + node):
        return pod[: -len(node) - 1]
    for pattern in (_CRONJOB_POD, _DEPLOYMENT_POD):
        m = pattern.match(pod)
        if m:
            return m.group(1)
    if namespace in ("", "kube-system"):
        for component in STATIC_COMPONENTS:
            if pod.startswith(component + "-") and not _SHORT_SUFFIX_POD.match(pod):
                return component
    for pattern in (_STATEFULSET_POD, _SHORT_SUFFIX_POD):
        m = pattern.match(pod)
        if m:
            return m.group(1)
    return pod


def _first(labels: Mapping[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = labels.get(key)
        if value:
            return value
    return ""


def workload_of(labels: Mapping[str, str]) -> str:
    """The workload of a stream: its pod's owner by name; labels only when there is no pod."""
    pod = _first(labels, POD_LABELS)
    if pod:
        return workload_from_pod(
            pod,
            node=_first(labels, NODE_LABELS),
            namespace=labels.get("namespace") or labels.get("k8s_namespace_name") or "",
        )
    hint = _first(labels, WORKLOAD_LABELS)
    if hint:
        return hint
    return labels.get("job") or labels.get("service_name") or labels.get("container") or ""


def _normalise_level(value: str) -> str:
    hit = _LEVEL_OF.get(value)  # the spellings real software prints, looked up as they stand
    if hit is not None:
        return hit
    return _normalise_level_text(value)


def _normalise_level_text(value: str) -> str:
    v = value.strip().lower()[:16]
    if v in ("err", "eror"):
        return "error"
    if v in ("warn",):
        return "warning"
    if v in ("crit", "critical", "emerg", "alert", "panic", "dpanic"):  # PostgreSQL PANIC, zap DPanic
        return "fatal"
    return v


_LEVEL_OF = {
    spelling: _normalise_level_text(spelling)
    for word in (*LEVEL_WORDS, "err", "eror", "warn", "crit", "critical", "emerg", "alert", "panic", "dpanic")
    for spelling in (word, word.upper(), word.capitalize())
}


def _level_from_text(text: str) -> str:
    if len(text) <= HEAD:
        m = _LEVEL_WORD_SHORT.search(text)
        word = m.group(1).lower() if m else ""
    else:
        b = _LEVEL_WORD.search(text.encode("utf-8", "surrogatepass"))
        word = b.group(1).decode().lower() if b else ""
    if not word:
        return "unknown"
    if word in ("fatal", "panic", "critical", "crit"):
        return "fatal"
    if word.startswith("warn"):
        return "warning"
    return "error"


# -- JSON ------------------------------------------------------------------------------------------


Subject = tuple[str, str, str]
"""What a Kubernetes event is about: (namespace, workload, pod or "")."""

_RS_NAME = re.compile(rf"^(.+)-{_SAFE}{{6,10}}$")
# A StatefulSet's claim: "<claim template>-<statefulset>-<ordinal>" (pkg/controller/statefulset
# stateful_set_utils.go getPersistentVolumeClaimName); the template name taken as one segment.
_STS_CLAIM = re.compile(r"^[a-z0-9]+-(.+-\d+)$")
_CRONJOB_RUN = re.compile(r"^(.+)-\d{8,10}$")


def _subject_of(obj: dict[str, object]) -> Subject | None:
    """The workload a Kubernetes event is about (its involvedObject), not the exporter's pod."""
    inv = obj.get("involvedObject") or obj.get("regarding")
    if not isinstance(inv, dict):
        return None
    kind, name = inv.get("kind"), inv.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        return None
    meta = obj.get("metadata")
    namespace = inv.get("namespace") or (meta.get("namespace") if isinstance(meta, dict) else "") or ""
    namespace = namespace if isinstance(namespace, str) else ""
    if kind == "Pod":
        return namespace, workload_from_pod(name, namespace=namespace), name
    if kind == "Node":  # cluster-scoped: node problems form one workload, "nodes"
        return "", "nodes", ""
    if kind == "PersistentVolumeClaim":  # a StatefulSet pod's claim belongs to the StatefulSet
        claim = _STS_CLAIM.match(name)
        if claim:
            pod = claim.group(1)
            return namespace, workload_from_pod(pod, namespace=namespace), pod
    pattern = _RS_NAME if kind == "ReplicaSet" else _CRONJOB_RUN if kind == "Job" else None
    m = pattern.match(name) if pattern is not None else None
    return namespace, m.group(1) if m else name, ""


def _from_json(line: str) -> tuple[str, str, Subject | None] | None:
    try:
        obj = orjson.loads(line)  # 3x json's speed; what it refuses, json reads as it always did
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(line)  # NaN, lone surrogates, numbers beyond a double, deep nesting
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the interpreter's stack
            return None
    if not isinstance(obj, dict):
        return None
    event = obj.get("event")
    if isinstance(event, dict) and isinstance(event.get("message"), str):
        obj = event  # eventrouter: {"verb": "ADDED", "event": {...}}
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
    kind = obj.get("type")
    subject = _subject_of(obj)
    if subject is not None:
        # A Kubernetes event: its type is its level, its reason names it.
        if not level and kind in ("Normal", "Warning"):
            level = "info" if kind == "Normal" else "warning"
        reason = obj.get("reason")
        if isinstance(reason, str) and reason and not message.startswith(reason):
            message = f"{reason}: {message}"
    return message, level, subject


# -- logfmt ----------------------------------------------------------------------------------------

# Stand-ins for an escaped backslash and an escaped quote while scanning (same length, so offsets
# hold). A line that holds one of them already is not taken for logfmt.
_ESC_BACKSLASH, _ESC_QUOTE = b"\x00", b"\x01"
_LOGFMT_KEYS = ("msg", "message", "level", "lvl", "ts", "time", "err", "error")
# RE2, one linear scan each: the first ``key=`` outside any quoted value (quoted values skipped
# whole), so a key inside a quoted value is never taken for one.
_KEY_AT = {key: re2.compile(rb'^(?:[^"]|"[^"]*")*?[ \t\r\n]' + key.encode() + rb"=") for key in _LOGFMT_KEYS}
_UNQUOTED = re2.compile(rb"[^ \t\r\n]*")
_LOGFMT_KEY_TEXTS = tuple((key, key + "=", " " + key + "=") for key in _LOGFMT_KEYS)


def _logfmt_value_slow(data: bytes, key: str) -> str | None:
    """The value of ``key`` in (escape-hidden) ``data``, by one RE2 scan; ``None`` if absent."""
    m = _KEY_AT[key].search(data)
    if m is None:
        return None
    start = m.end()
    close = data.find(b'"', start + 1) if data[start : start + 1] == b'"' else -1
    if close >= 0:
        raw = data[start + 1 : close]
    else:  # unquoted, or a quote never closed: up to the next blank
        u = _UNQUOTED.match(data, start)
        raw = data[start : u.end() if u else start]
    return raw.decode("utf-8", "surrogatepass")


def _logfmt_values(line: str) -> dict[str, str]:
    """The values of the keys this module reads (first occurrence wins), in linear time.

    Fast path: the first `` key=`` is outside quotes when an even number of quotes precede it
    (``str.find`` and ``str.count``). Otherwise, or with tabs or newlines as separators, one RE2
    scan that skips quoted values whole.
    """
    text = " " + line
    escaped = "\\" in text
    if escaped:
        text = text.replace("\\\\", "\x00\x00").replace('\\"', "\x01\x01")
    simple = "\t" not in text and "\n" not in text and "\r" not in text
    data: bytes | None = None
    found: dict[str, str] = {}
    for key, key_eq, blank_key_eq in _LOGFMT_KEY_TEXTS:
        if key_eq not in text:
            continue
        at = text.find(blank_key_eq) if simple else -1
        if at >= 0 and text.count('"', 0, at) % 2 == 0:
            start = at + len(blank_key_eq)
            close = text.find('"', start + 1) if text.startswith('"', start) else -1
            if close >= 0:
                value = text[start + 1 : close]
            else:
                end = text.find(" ", start)
                value = text[start:] if end < 0 else text[start:end]
        else:
            if data is None:
                data = text.encode("utf-8", "surrogatepass")
            slow = _logfmt_value_slow(data, key)
            if slow is None:
                continue
            value = slow
        if escaped:
            value = value.replace("\x01\x01", '"').replace("\x00\x00", "\\")
        found[key] = value
    return found


def _from_logfmt(line: str) -> tuple[str, str] | None:
    if "msg=" not in line and "message=" not in line:
        return None
    if "\x00" in line or "\x01" in line:
        return None
    pairs = _logfmt_values(line)
    message = pairs.get("msg") or pairs.get("message") or ""
    if not message or ("level" not in pairs and "lvl" not in pairs and "ts" not in pairs and "time" not in pairs):
        return None
    err = pairs.get("err") or pairs.get("error")
    if err and err != message:
        message = f"{message}: {err}"
    return message, _normalise_level(pairs.get("level") or pairs.get("lvl") or "")


# -- multi-line entries ----------------------------------------------------------------------------


def _first_line(text: str) -> str:
    nl = text.find("\n", 0, HEAD)
    return text[:HEAD] if nl < 0 else text[:nl]


def _java_exception(head: str, rest: str) -> str:
    """The first exception (unless the head is it) and the root cause, the last ``Caused by:``."""
    found: list[str] = []
    if not _JAVA_EXCEPTION.match(head[:HEAD]):
        m = _JAVA_EXCEPTION.match(_first_line(rest))
        if m:
            found.append(m.group(1))
    cause = rest.rfind("\nCaused by: ")
    if cause >= 0 or rest.startswith("Caused by: "):
        m = _JAVA_EXCEPTION.match(_first_line(rest[cause + 1 :]))
        if m:
            found.append("Caused by: " + m.group(1))
    return " ".join(found)


def _split_trace(text: str) -> tuple[str, str]:
    """(head, exception) of a multi-line entry; the exception is ``""`` when none is recognised.

    Go panics keep their head line (the goroutines are frames); Python tracebacks add their last
    line (the exception); Java traces add their exception and root cause. Other continuation
    lines (a PostgreSQL ``DETAIL:``, a Node.js stack) are dropped from the message: rules still
    see the whole raw line.
    """
    nl = text.find("\n")
    head, rest = text[:nl].rstrip(), text[nl + 1 :]
    if head.startswith(("panic:", "fatal error:")):
        return head, ""
    if head.startswith("Traceback (most recent call last)") or "Traceback (most recent call last)" in rest:
        body = rest.rstrip()
        m = _PY_EXCEPTION.match(body[body.rfind("\n") + 1 :][:HEAD])
        return head, m.group(1) if m else ""
    if "\tat " in rest or "\n    at " in rest or rest.startswith(("\tat ", "    at ", "Caused by: ")):
        return head, _java_exception(head, rest)
    return head, ""


# -- the whole line --------------------------------------------------------------------------------


def _join(head: str, exception: str) -> str:
    if not exception or exception in head:
        return head
    return f"{head} {exception}"


def parse_message(line: str) -> tuple[str, str]:
    """(message, level) of one raw line (one entry, which may span several lines)."""
    message, level, _subject = parse_line(line)
    return message, level


def parse_line(line: str) -> tuple[str, str, Subject | None]:
    """(message, level, subject): the subject is what a Kubernetes event is about, else ``None``."""
    text = line.strip()
    if text.startswith("{"):
        found = _from_json(text)
        if found:
            msg, level, subject = found
            return msg[:MAX_MESSAGE], level or _level_from_text(msg), subject
    message, level = _parse_text(text)
    return message, level, None


def _parse_text(text: str) -> tuple[str, str]:
    exception = ""
    if "\n" in text:
        text, exception = _split_trace(text)
    first = text[:1]
    if first in _KLOG_LEVEL and text[1:5].isdigit():
        m = _KLOG.match(text[:HEAD])
        if m:
            return _join(text[m.end() :], exception)[:MAX_MESSAGE], _KLOG_LEVEL[m.group(1)]
    found = _from_logfmt(text) if "msg=" in text or "message=" in text else None  # its own first test
    if found:
        msg, level = found
        return msg[:MAX_MESSAGE], level or _level_from_text(msg)
    if (first.isdigit() and text[4:5] == "-") or (first == "[" and text[5:6] == "-"):  # a leading date
        m = _LEADING_TS.match(text[:HEAD])
        if m:
            text = text[m.end() :]
            p = _LEADING_PID.match(text[:64])
            if p:
                text = text[p.end() :]
    if text.startswith(("panic:", "fatal error:")):
        return _join(text, exception)[:MAX_MESSAGE], "fatal"
    pg = _PG_INFO.match(text[:64])
    if pg:
        return _join(text[pg.end() :], exception)[:MAX_MESSAGE], "info"
    lm = _LEADING_LEVEL.match(text[:64])
    if lm:
        return _join(text[lm.end() :], exception)[:MAX_MESSAGE], _normalise_level(lm.group(1))
    if text.startswith("Traceback (most recent call last)"):
        return _join(text, exception)[:MAX_MESSAGE], "error"
    message = _join(text, exception)[:MAX_MESSAGE]
    return message, _level_from_text(text if not exception else message)


# -- many lines of one statement ---------------------------------------------------------------------


_ASCII_DIGIT = re.compile("[0-9]")
_ZEROS = bytes.maketrans(b"0123456789", b"0000000000")


class LineParser:
    """:func:`parse_line` that parses each statement once, not each line: most lines of one logging
    statement differ only in their digits (ids, addresses, counts, times).

    Why that is exact: outside JSON, multi-line entries and escapes, every decision parsing makes
    looks at characters other than digits, or at digits only as digits (regex digit classes, ``isdigit``, word
    boundaries), never at which digit. So two lines equal once every ASCII digit is made ``0`` (one
    *form*) parse along the same path, into the same slice of the line at the same level, as long as the
    slice is all the message is (a logfmt ``err`` appended to ``msg`` compares two texts, digits
    and all, so such lines are parsed each time) and the level holds no digit (a ``level=`` value
    is taken as it is). The first line of each form is parsed; the message's place in it is
    kept when the message occurs once in the line, and later lines are cut at that place.

    The cache holds at most ``limit`` forms (then it starts again); results never depend on it.
    """

    def __init__(self, *, limit: int = 100_000) -> None:
        self._limit = limit
        self._cuts: dict[str, tuple[int, int, str]] = {}  # zeroed line -> (start, end, level) in the line

    def parse(self, line: str, zeroed: str | None = None) -> tuple[str, str, Subject | None, str | None]:
        """:func:`parse_line`'s (message, level, subject), and the message with its digits zeroed
        (``zero_digits(message)``) when the line's form has a cut (see :meth:`cut`), else ``None``.
        ``zeroed`` is ``zero_digits(line)`` when the caller has it."""
        if zeroed is None:
            zeroed = line.encode("ascii").translate(_ZEROS).decode("ascii") if line.isascii() else zero_digits(line)
        cut = self._cuts.get(zeroed)
        if cut is not None:
            start, end, level = cut
            return line[start:end], level, None, zeroed[start:end]
        message, level, subject = parse_line(line)
        text = line.strip()
        if text[:1] == "{" or "\n" in text or "\\" in text or subject is not None or _ASCII_DIGIT.search(level):
            return message, level, subject, None
        if ("msg=" in text or "message=" in text) and ("err=" in text or "error=" in text):
            return message, level, subject, None
        start = text.find(message)
        if start < 0 or text.rfind(message) != start:
            return message, level, subject, None
        start += len(line) - len(line.lstrip())  # the place in the line, not in the stripped text
        end = start + len(message)
        if len(self._cuts) >= self._limit:
            self._cuts.clear()
        self._cuts[zeroed] = (start, end, level)
        return message, level, None, zeroed[start:end]

    def cut(self, zeroed: str) -> tuple[int, int, str] | None:
        """Where the message of every line of this form (``zero_digits(line)``) is, and its level:
        ``(start, end, level)``, ``line[start:end]`` being the message. ``None``: each line of the
        form is parsed in full (JSON, escapes, multi-line entries, events, a level with digits...)."""
        return self._cuts.get(zeroed)


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
        pod=_first(labels, POD_LABELS),
        container=labels.get("container") or labels.get("container_name") or "",
        workload=workload_of(labels),
    )
