"""Log-message fingerprinting: masking + order-independent template mining -> template and group key.

Two stages, both pure (no I/O):

1. :func:`mask` replaces what is obviously variable by ``<*>``: every word piece holding a digit
   (numbers with their sign, ``blk_-123``, hex ids, IPs and ports, versions, durations such as
   ``30s``, timestamps, pod names with hashes), URLs, e-mail addresses, paths, MAC/IPv6 addresses,
   syslog dates, sizes with their unit (``5.2 KB``), the values of ``key="quoted"`` pairs,
   ``true``/``false``/``null``, and empty ``()``/``[]``/``""``.  Runs of adjacent variables collapse
   into one ``<*>``, so a list of any length gives one template.  Word pieces are split at
   ``, : ; = | ( ) [ ] { } < > " '`` and whitespace.
2. :class:`Fingerprinter` merges masked templates that differ in one word only ("stars"): masked
   templates of the same length that agree everywhere but at one position are put in one group
   once that position shows at least ``min_variants`` distinct words (3 by default: two words are
   often an alternative such as ``bytes``/``values``, three are a variable), or two words when one
   of them is the other with its variables filled in (``mask=ffff`` next to ``mask=<*>``).  Verbs
   in -ed/-ing and HTTP methods are never taken for variables: they name the event (``VM Started``
   and ``VM Stopped``, ``GET`` and ``POST`` stay apart).  A group's template shows ``<*>`` wherever
   its members differ.

Stable keys
-----------
The key is 16 hex characters of BLAKE2b over the group's template text.  Merging only ever joins
groups (a star that has reached its threshold keeps it), so the grouping of a set of lines is
the connected components of a relation on the *set* of distinct masked templates: it does not
depend on the order the lines came in, and a fresh fingerprinter, one restored from
:meth:`Fingerprinter.snapshot`, or a batch run over the same lines all end with the same
templates and keys.

Online, a group's template can widen when a new line joins or two groups merge; its key then
changes.  :meth:`Fingerprinter.aliases` maps every key handed out before to the key that now
stands for it, so a store can fold old groups into new ones; :meth:`Fingerprinter.resolve`
applies the map to one key.  After all lines are seen, resolving the online key of each line
gives exactly its batch key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import re2

from sentinel.core.model import Fingerprint

__all__ = ["VAR", "Fingerprinter", "mask", "template_key", "variables", "zero_digits"]

VAR = "<*>"
"""How a variable is shown in a template."""

_V = "\ue000"  # a private-use character stands for a variable while masking
_SNAPSHOT_VERSION = 1

_DIGITS = str.maketrans("0123456789", "0000000000")
_ASCII_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")


def zero_digits(message: str) -> str:
    """Every ASCII digit made ``0``: masking treats all digits alike, so this is a cache key."""
    if message.isascii():
        return message.encode("ascii").translate(_ASCII_DIGITS).decode("ascii")
    return message.translate(_DIGITS)


_normalise = zero_digits


# Structured values that are variable even without a digit, each behind a cheap gate (a
# substring test, or a fast literal search) so that most lines skip most patterns.  Patterns see
# normalised text (digits are "0"), but use \d so that other digits behave too.
_DOW = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_MONTH_GATE = re.compile(_MON + r"[a-z]*\s")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DATE = re.compile(  # neither digit counts nor signs are checked: numbers changing never change the mask
    rf"\b(?:{_DOW}[a-z]*,?\s+)?{_MON}[a-z]*\s+[-+]?\d+\b(?:,?\s+[-+]?\d+\b)?"
    r"(?:\s+[-+]?\d+:[-+]?\d+(?::[-+]?\d+(?:[.,]\d+)?)?(?:\s+[A-Z]{3,4}\b)?(?:\s+[-+]?\d+\b)?)?"
)
_HEX_COLON = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f:]*\d)[0-9A-Fa-f]+(?::{1,2}[0-9A-Fa-f]+){2,}(?![\w:])")  # MAC, IPv6
_SIZE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?\s+(?:[KMGTPE]i?B|B)\b")  # "5.2 KB"
_PATH = re.compile(r"(?<![\w/.])(?:[A-Za-z]:)?+[/\\][\w.$@~*+%=\[\]/\\,:-]*+(?:\?[^\s\"']*+)?+")
_DOTTED_PATH = re.compile(r"(?<![\w.-])[\w-]++(?:\.[\w-]++)++/[\w./$-]*+")  # host/path, java/component
# pod names (ReplicaSet hash + pod suffix), and ReplicaSet names (a pod-template-hash of 8-10
# characters of the same vowel-less alphabet: apimachinery's rand.SafeEncodeString)
_POD = re.compile(
    r"\b[a-z0-9][a-z0-9-]*-(?:[bcdfghjklmnpqrstvwxz2-9]{5,10}-[bcdfghjklmnpqrstvwxz2-9]{5}"
    r"|[bcdfghjklmnpqrstvwxz2-9]{8,10})(?![a-z0-9-])"
)
_QUOTED_VALUE = re.compile(r"""\b([A-Za-z_][\w.-]*)=(?:"(?:[^"\\\n]++|\\.)*+"|'[^'\n]*+')""")
_KV_VALUE = re.compile(r"(?<=[\w.-]=)(?!\ue000)[^\s,;&)\]}\"']+")
# a word piece holding a digit or an already masked part; pieces end at these delimiters
_PIECE = re.compile(r"(?<![^\s,:;=|()\[\]{}<>\"'])[^\s,:;=|()\[\]{}<>\"'\d\ue000]*+[\d\ue000][^\s,:;=|()\[\]{}<>\"']*+")
_WORD_VALUE = re.compile(r"(?<![\w-])(?:[Tt]rue|TRUE|[Ff]alse|FALSE|null|NULL|nil|None)(?![\w-])")
_EMPTY = re.compile(r"(?<=[(\[{])(?=[)\]}])|(?<=\")(?=\"(?:[\s,;)\]}]|$))")
_RUN = re.compile("\ue000(?:[\\s,:;|/._-]*\ue000)+")
# Gates: each matches some part that every match of its pattern contains, and starts with a
# literal, which Python's re finds by a fast scan; the pattern itself (led by a lookbehind) is
# tried at every position, so it runs only on the few texts that pass its gate.
_HEX_COLON_GATE = re.compile(r"::?[0-9A-Fa-f]+::?[0-9A-Fa-f]")  # two of its colon-separated steps
_DOTTED_PATH_GATE = re.compile(r"\.[\w-]+/")  # its last dotted label and the slash
_POD_GATE = re.compile(r"-[bcdfghjklmnpqrstvwxz2-9]{5}")  # the dash and the shortest hash


# Formats whose structure says which words are variables (sources in the comments).
# nginx error log tail (src/http/ngx_http_request.c ngx_http_log_error_handler): ", client: %V,
# server: %V, request: \"%V\", upstream: \"%V\", host: \"%V\", referrer: \"%V\"", fields optional.
_NGINX_TAIL = re.compile(r", client: .*$", re.S)
# Access-log request lines (nginx combined "$request" $status, Envoy "%REQ(:METHOD)% %REQ(:PATH)%
# %PROTOCOL%" %RESPONSE_CODE%): method, path and protocol are variables when a status follows.
_REQUEST_LINE = re.compile(
    r'"(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|CONNECT|TRACE) [^"\s]*+(?: HTTP/[\d.]+)?" (?=\d)'
)
_QUOTED_FIELD = re.compile(r'"[^"\n]*+"')
# kube-scheduler FitError (pkg/scheduler/framework/types.go): "0/%v nodes are available: %v." then a
# reason list of any length and "preemption: ...": the list is one variable.
_NODE_REASONS = re.compile(r"(nodes are available:)[^\"\n]*+")
# Spring Boot's console pattern "%5p PID --- [%15.15t] logger : msg" (3.x: "--- [app] [thread]")
# and the JVM's "Exception in thread \"%s\"": thread names are variables, spaces and all.
_THREAD = re.compile(r'(--- \[)[^\]\n]*+\](?: \[[^\]\n]*+\](?= ))?|(Exception in thread ")[^"\n]*+"')
# logback's and log4j2's default layouts "%d [%thread] %-5level %logger - %msg": the bracket before
# the level is the thread.
_THREAD_BEFORE_LEVEL = re.compile(r"(?<![^\s])\[[^\]\n]{1,120}\](?= +(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\b)")
_THREAD_BEFORE_LEVEL_GATE = re.compile(r"\] +(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\b")  # its tail
# DNS names: dotted lower-case labels ending in a common suffix (a trailing dot allowed; not a Java
# package such as java.net.SocketTimeoutException, where a name follows the dot), and the
# record type that follows one in CoreDNS's errors plugin ("%d %s %s: %s").
_DNS_SUFFIX = (
    r"(?:com|net|org|io|dev|app|cloud|local|internal|lan|svc|info|biz|co|us|uk|de|eu|fr|nl|pl|jp|ai)\.?(?![\w-]|\.\w)"
)
_DNS_NAME = re.compile(r"(?<![\w.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+" + _DNS_SUFFIX)
_DNS_GATE = re.compile(r"\." + _DNS_SUFFIX)  # starts with a literal: a fast scan for dots
_RR_TYPE = re.compile("\ue000 (?:A|AAAA|CNAME|SRV|PTR|MX|TXT|NS|SOA|HTTPS|SVCB|CAA|ANY)(?=[:\\s]|$)")


# klog's ``ErrorS(err, msg)`` puts the error in ``err="..."``: like a JSON or logfmt line's error
# (which parsing appends to the message), it says what went wrong, so its text is masked like a
# message rather than dropped whole. Other quoted values are variables.
_ERROR_KEYS = frozenset(("err", "error"))


def _quoted_value(m: re.Match[str]) -> str:
    if m.group(1) in _ERROR_KEYS:
        return m.group(0)
    q = '"' if m.group(0)[len(m.group(1)) + 1] == '"' else "'"
    return f"{m.group(1)}={q}{_V}{q}"


# A double-quoted single word (plain or JSON-escaped) inside a message: Go's %q, how Kubernetes,
# client-go and most Go errors quote names (resource "pods", in the namespace "shop", for user
# "app"). Not a ``key="value"`` (above) and not a quoted phrase (a klog message has spaces).
# Two alternatives, ``\"word\"`` and ``"word"``, each led by its literal so that Python's re scans
# for it fast; each then checks, by a lookbehind, the character before its opening quote (that of
# ``(?<![\w"\\=])(\\?")`` with ``\1`` closing). Group 1 is the backslash of the escaped form.
_QUOTED_WORD = re.compile(
    r'\\(?<=(\\))"(?<=(?<![\w"\\=])\\")(?=[^\s"\\]*[A-Za-z])[^\s"\\]{1,253}\\"(?![\w"])'
    r'|"(?<=(?<![\w"\\=])")(?=[^\s"\\]*[A-Za-z])[^\s"\\]{1,253}"(?![\w"])'
)


_QUOTED_WORD_MASK = '\\1"' + _V + '\\1"'  # a template string: no Python call per match


def _structured(text: str) -> str:
    if '="' in text or "='" in text:  # first: a URL inside a quoted value must not eat its quotes
        text = _QUOTED_VALUE.sub(_quoted_value, text)
    if '"' in text:
        text = _QUOTED_WORD.sub(_QUOTED_WORD_MASK, text)
    if ", client: " in text:
        text = _NGINX_TAIL.sub(", client: " + _V, text, count=1)
    if '" ' in text and "HTTP" in text or "GET " in text or "POST " in text:
        text, n = _REQUEST_LINE.subn('"' + _V + '" ', text, count=1)
        if n:  # an access log: the quoted fields after the request (agent, forwarded-for, ids, hosts)
            head, sep, tail = text.partition('"' + _V + '" ')
            text = head + sep + _QUOTED_FIELD.sub('"' + _V + '"', tail)
    if "nodes are available:" in text:
        text = _NODE_REASONS.sub(r"\1 " + _V, text)
    if "] " in text and _THREAD_BEFORE_LEVEL_GATE.search(text):
        text = _THREAD_BEFORE_LEVEL.sub("[" + _V + "]", text)
    if "--- [" in text or "Exception in thread" in text:
        text = _THREAD.sub(lambda m: m.group(1) + _V + "]" if m.group(1) else m.group(2) + _V + '"', text)
    if "." in text and _DNS_GATE.search(text):
        text = _DNS_NAME.sub(_V, text)
        if _V + " " in text:
            text = _RR_TYPE.sub(_V, text)
    return text


def _pieces(text: str) -> str:
    """``_PIECE.sub(_V, text)``, started at the word of the first digit or variable.

    Exact: a piece never holds a space, and its lookbehind looks one character back, which after
    a space is a delimiter as at the start of a text; an ASCII head before that word holds no
    digit (normalised: ``0`` only) and no variable, so no match. Half of a message's characters
    come before its first number, and this regex is the most expensive step of masking.
    """
    i, j = text.find("0"), text.find(_V)
    first = i if j < 0 else j if i < 0 else min(i, j)
    start = text.rfind(" ", 0, first) + 1
    head = text[:start]
    if start and head.isascii():  # a digit of another script (``\d``) in the head: the whole text
        return head + _PIECE.sub(_V, text[start:])
    return _PIECE.sub(_V, text)


def _mask_normalised(text: str, kv_values: bool) -> str:
    text = _structured(text)
    if "://" in text:
        text = _URL.sub(_V, text)
    if "@" in text:
        text = _EMAIL.sub(_V, text)
    if _MONTH_GATE.search(text):
        text = _DATE.sub(_V, text)
    if text.count(":") >= 2 and _HEX_COLON_GATE.search(text):
        text = _HEX_COLON.sub(_V, text)
    if "B" in text:
        text = _SIZE.sub(_V, text)
    if "/" in text or "\\" in text:
        text = _PATH.sub(_V, text)
        if "/" in text and _DOTTED_PATH_GATE.search(text):
            text = _DOTTED_PATH.sub(_V, text)
    if "-" in text and _POD_GATE.search(text):
        text = _POD.sub(_V, text)
    if "=" in text:
        if kv_values:
            text = _KV_VALUE.sub(_V, text)
    if "0" in text or _V in text:
        text = _pieces(text)
    low = text.lower()
    if "true" in low or "false" in low or "null" in low or "nil" in low or "none" in low:
        text = _WORD_VALUE.sub(_V, text)
    if "()" in text or "[]" in text or "{}" in text or '""' in text:
        text = _EMPTY.sub(_V, text)
    if _V in text:
        text = _RUN.sub(_V, text)
    return text


def mask(message: str, *, kv_values: bool = False) -> str:
    """The masking step alone, without state: variables shown as ``<*>``, whitespace normalised."""
    return " ".join(_mask_normalised(_normalise(message), kv_values).split()).replace(_V, VAR)


_VARIABLE_OPTIONS = re2.Options()
_VARIABLE_OPTIONS.log_errors = False
_MAX_VARIABLES = 64


def variables(template: str, message: str) -> list[str] | None:
    """The parts of ``message`` that stand where ``template`` shows ``<*>``, in order.

    ``None`` when the message does not fit the template (a template from other rules, or a
    message cut at its length limit). RE2, so the match is linear whatever the two hold.
    """
    parts = template.split(VAR)
    if len(parts) < 2 or len(parts) > _MAX_VARIABLES + 1:
        return [] if len(parts) < 2 else None
    pattern = "(.*?)".join(re.escape(p) for p in parts)
    text = " ".join(message.split())
    try:
        m = re2.compile(pattern, options=_VARIABLE_OPTIONS).fullmatch(text)
    except re2.error:
        return None
    if m is None:
        return None
    return [g.strip() for g in m.groups()]


def template_key(template: str) -> str:
    """The stable key of a template: 16 hex characters of BLAKE2b."""
    return hashlib.blake2b(template.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


# Words that name the event rather than vary within it, never taken for variables: verbs in -ed
# and -ing (Started/Stopped, "VM Paused"), HTTP methods.
_CONSTANT_WORD = re.compile(r"[\"'(\[]?(?:[A-Za-z]{2,}(?:ed|ing)|GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)[,.:;]?")


def _generalises(general: str, word: str) -> bool:
    """Whether ``word`` is ``general`` with its variables filled in (``k=<*>`` and ``k=abc``)."""
    if _V not in general or general == word:
        return False
    return re.fullmatch(re.escape(general).replace(_V, r"\S+"), word) is not None


def _make_fingerprint(tokens: list[str]) -> Fingerprint:
    template = " ".join(tokens).replace(_V, VAR)
    return Fingerprint(template=template, key=template_key(template))


# A star: the masked text before the word at its position (with the space after it) and after it
# (with the space before it). Tokens hold no spaces, so the two strings name the length, the
# position and the other tokens exactly; two slices hash faster than a tuple of the tokens.
_Star = tuple[str, str]


class Fingerprinter:
    """Turns log messages into a readable template and a stable group key (see the module doc).

    Keyword-only tunables (the defaults are the one configuration):

    * ``min_variants``: distinct words at one position that make it a variable (default 3).
    * ``kv_values``: mask every ``key=value`` value, not only those with digits (default off).
    * ``cache_size``: messages remembered before the caches are cleared (results do not depend
      on it, only speed and memory do).
    """

    def __init__(self, *, min_variants: int = 3, kv_values: bool = False, cache_size: int = 100_000) -> None:
        if min_variants < 2:
            raise ValueError("min_variants must be at least 2")
        self._min_variants = min_variants
        self._kv_values = kv_values
        self._cache_size = cache_size
        self._by_message: dict[str, int] = {}  # exact message -> masked-template id
        self._by_normal: dict[str, int] = {}  # message with digits normalised -> masked-template id
        self._ids: dict[str, int] = {}  # masked template text -> id
        self._masked: list[tuple[str, ...]] = []  # id -> tokens
        self._root: list[int] = []  # id -> id of its group's root (kept flat: no find needed)
        self._fps: list[Fingerprint] = []  # id -> current fingerprint of its group
        self._members: dict[int, list[int]] = {}  # root id -> ids in its group
        self._tokens: dict[int, list[str]] = {}  # root id -> the group's template tokens
        self._stars: dict[_Star, dict[str, int]] = {}  # star -> distinct word at its position -> an id
        self._merged_stars: set[_Star] = set()
        self._constant: dict[str, bool] = {}  # token -> whether it names the event (_CONSTANT_WORD)
        self._aliases: dict[str, str] = {}
        self.merges = 0  # how many times groups merged: a cheap "did any key change?" for callers

    # -- public API -------------------------------------------------------------------------------

    def fingerprint(self, message: str) -> Fingerprint:
        """Template and key of ``message``; learns from it (see the module doc on key changes)."""
        mid = self._by_message.get(message)
        if mid is None:
            mid = self._intern(message)
        return self._fps[mid]

    def fingerprint_id(self, message: str, normal: str | None = None) -> int:
        """What :meth:`fingerprint` learns, as an id: ``fingerprints[id]`` is the message's
        fingerprint from then on (it follows merges). For hot loops that remember the id.
        ``normal``: ``zero_digits(message)``, when the caller has it."""
        mid = self._by_message.get(message)
        return self._intern(message, normal) if mid is None else mid

    def fingerprint_id_zeroed(self, message: str, zeroed: str) -> int:
        """:meth:`fingerprint_id` for a caller that knows ``zeroed == zero_digits(message)``: the
        template follows from the zeroed text alone, so a known one needs no other work."""
        mid = self._by_normal.get(zeroed)
        return self.fingerprint_id(message, zeroed) if mid is None else mid

    @property
    def fingerprints(self) -> list[Fingerprint]:
        """Id (from :meth:`fingerprint_id`) -> the current fingerprint of its group. Read only."""
        return self._fps

    def peek(self, message: str) -> Fingerprint:
        """What :meth:`fingerprint` would answer for ``message`` now, without learning from it.

        For testers and previews: nothing is stored, so a tried line never merges templates or
        changes a group's key. An unseen message gets its masked template as it stands.
        """
        mid = self._by_message.get(message)
        if mid is None:
            normal = _normalise(message)
            mid = self._by_normal.get(normal)
            if mid is None:
                masked = " ".join(_mask_normalised(normal, self._kv_values).split())
                mid = self._ids.get(masked)
                if mid is None:
                    return _make_fingerprint(masked.split(" ") if masked else [])
        return self._fps[mid]

    def template_of(self, key: str) -> str | None:
        """The current template behind ``key`` (an old key is followed through its alias)."""
        key = self.resolve(key)
        for root in self._members:
            fp = self._fps[root]
            if fp.key == key:
                return fp.template
        return None

    def aliases(self) -> dict[str, str]:
        """Every key handed out that no longer names a group -> the key that names it now.

        Chains are resolved (values are current keys).  A store folds the group kept under each
        old key into the group under its new key; counts add up, nothing needs splitting.
        """
        return {old: self.resolve(old) for old in self._aliases}

    def resolve(self, key: str) -> str:
        """The current key for ``key`` (``key`` itself when it was never replaced)."""
        for _ in range(len(self._aliases) + 1):
            new = self._aliases.get(key)
            if new is None:
                break
            key = new
        return key

    def templates(self) -> dict[str, str]:
        """Current key -> template of every group."""
        return {self._fps[root].key: self._fps[root].template for root in self._members}

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: the distinct masked templates seen (the grouping follows from them)."""
        return {
            "version": _SNAPSHOT_VERSION,
            "config": {"min_variants": self._min_variants, "kv_values": self._kv_values},
            "masked": [" ".join(tokens).replace(_V, VAR) for tokens in self._masked],
            "aliases": dict(self._aliases),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Fingerprinter:
        """A fingerprinter with the state of :meth:`snapshot`: same groups, same keys."""
        if data.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown fingerprinter snapshot version {data.get('version')!r}")
        config = data.get("config", {})
        fp = cls(min_variants=int(config.get("min_variants", 3)), kv_values=bool(config.get("kv_values", False)))
        for text in data.get("masked", []):
            fp._add_masked(" ".join(str(text).replace(VAR, _V).split()))
        for old, new in dict(data.get("aliases", {})).items():
            if old != new:
                fp._aliases.setdefault(str(old), str(new))
        return fp

    # -- internals --------------------------------------------------------------------------------

    def _intern(self, message: str, normal: str | None = None) -> int:
        """``normal``: ``zero_digits(message)``, when the caller has it."""
        if len(self._by_message) >= self._cache_size:
            self._by_message.clear()
            self._by_normal.clear()
        if normal is None:
            normal = zero_digits(message)
        mid = self._by_normal.get(normal)
        if mid is None:
            mid = self._add_masked(" ".join(_mask_normalised(normal, self._kv_values).split()))
            self._by_normal[normal] = mid
        self._by_message[message] = mid
        return mid

    def _add_masked(self, masked: str) -> int:
        mid = self._ids.get(masked)
        if mid is not None:
            return mid
        mid = len(self._masked)
        tokens = tuple(masked.split(" ")) if masked else ()
        self._ids[masked] = mid
        self._masked.append(tokens)
        self._root.append(mid)
        self._members[mid] = [mid]
        self._tokens[mid] = list(tokens)
        self._fps.append(_make_fingerprint(self._tokens[mid]))
        self._join_stars(mid, tokens, masked)
        return mid

    def _join_stars(self, mid: int, tokens: tuple[str, ...], masked: str) -> None:
        n = len(tokens)
        if n < 2:
            return
        pure = tokens.count(_V)
        stars = self._stars
        constant = self._constant
        start = 0  # where ``word`` starts in ``masked``
        for word in tokens:
            end = start + len(word)
            is_constant = constant.get(word)
            if is_constant is None:
                is_constant = constant[word] = _CONSTANT_WORD.fullmatch(word) is not None
            if is_constant or pure - (word == _V) == n - 1:
                start = end + 1
                continue  # an event word, or nothing but variables around it
            star_id = (masked[:start], masked[end:])
            start = end + 1
            star = stars.get(star_id)
            if star is None:
                stars[star_id] = {word: mid}
                continue
            if word in star:
                continue
            star[word] = mid
            if star_id in self._merged_stars:
                self._union(next(iter(star.values())), mid)
            elif len(star) >= self._min_variants or any(_generalises(a, b) for a in star for b in star):
                self._merged_stars.add(star_id)
                first, *others = star.values()
                for other in others:
                    self._union(first, other)

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._root[a], self._root[b]
        if ra == rb:
            return
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        old_a, old_b = self._fps[ra], self._fps[rb]
        tokens = [x if x == y else _V for x, y in zip(self._tokens[ra], self._tokens.pop(rb), strict=True)]
        self._tokens[ra] = tokens
        fp = _make_fingerprint(tokens)
        moved = self._members.pop(rb)
        members = self._members[ra]
        members.extend(moved)
        for i in moved:
            self._root[i] = ra
        for i in members:
            self._fps[i] = fp
        for old in (old_a, old_b):
            if old.key != fp.key:
                self._aliases[old.key] = fp.key
        self._aliases.pop(fp.key, None)
        self.merges += 1
