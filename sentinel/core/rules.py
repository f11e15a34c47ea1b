"""Compiled rules and classification: first enabled match wins, else P4 under ``default``.

Patterns are RE2 (google-re2), as in the Go tool: matching time stays linear in the line length
whatever a rule says. All patterns go into one ``re2.Set`` so a line is scanned once for every
rule; the few rules that also match on labels, namespaces or levels are then checked in order.

What a pattern sees: by default the whole raw line (the whole entry, for a multi-line one), as the
Go tool matched it, so a logfmt ``level=error`` or a JSON ``"level":"error"`` is part of what its
``generic-error`` rule sees. A rule may instead say ``on: message`` (the parsed message alone), and
``levels: [error, fatal]`` (only lines at those levels; a Kubernetes event's ``Warning`` is
``warning``, ``Normal`` is ``info``). A rule without ``levels`` ignores the level.

Limits: at most :data:`MAX_RULES` (10,000) rules in one file, and the set of their patterns may
use up to :data:`SET_MAX_MEM` (256 MiB) inside RE2 (the default 8 MiB failed between 2,000 and
3,000 ordinary rules). Past either, :class:`RuleLimitError` names the count.
"""

from __future__ import annotations

import re._constants as _sre_constants  # Python's own regex parser: only for digit_blind
import re._parser as _sre_parser
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from sentinel.core.model import Priority

DEFAULT_RULE = "default"
LEVELS = ("fatal", "error", "warning", "info", "debug", "unknown")
"""The levels parsing gives (``sentinel.core.parsing``); other words a line may carry count as unknown."""
ON = ("line", "message")
_LEVEL_SET = frozenset(LEVELS)

MAX_RULES = 10_000
SET_MAX_MEM = 256 * 1024 * 1024

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
_SET_OPTIONS.max_mem = SET_MAX_MEM


class RuleLimitError(ValueError):
    """Too many rules, or their patterns together too big for one RE2 set; the message names the count."""


class PatternError(ValueError):
    """An RE2 pattern did not compile; ``reason`` is RE2's own message."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"invalid RE2 pattern {pattern!r}: {reason}")


def compile_pattern(pattern: str) -> Any:
    """``re2.compile`` that raises :class:`PatternError` carrying RE2's reason."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as err:
        reason = err.args[0] if err.args else str(err)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(pattern, str(reason)) from None


_DIGIT_CODES = tuple(range(ord("0"), ord("9") + 1))


def digit_blind(pattern: str) -> bool:
    """Whether ``pattern`` cannot tell one ASCII digit from another: it matches a text exactly when
    it matches the text with every ASCII digit made ``0``. ``False`` when in doubt.

    So no literal digit (``503``), and no class that holds some digits but not all (``5[0-4]``);
    ``\\d``, ``\\w``, ``.``, ``[0-9]`` and word boundaries treat every digit alike. RE2 syntax that
    Python's parser does not read (``\\pN``, ``\\Q..\\E``, ``\\x{31}``) counts as telling them apart.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" for RE2's [[:digit:]]
            tree = _sre_parser.parse(_as_python(pattern))
    except Exception:  # any pattern Python cannot read is "in doubt"
        return False
    return _blind(tree)


_FLAG_GROUP = re2.compile(r"\(\?[imsU]+(?:-[imsU]+)?\)")


def _as_python(pattern: str) -> str:
    """``pattern`` as Python's parser must read it to see RE2's digits.

    RE2 takes ``(?i)``-like groups anywhere, Python only first: each becomes ``(?:)``, an empty
    group of the same ends, not nothing (``a{(?i)3}`` is no count in RE2, and in a class
    ``[ -(?i)9]`` the range `` -(`` must keep its end). Flags change nothing about digits.
    RE2 reads ``{,n}`` as literal text (a count starts with a digit), Python as ``{0,n}``: that
    ``{`` is escaped. What follows a backslash is left alone."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif ch == "{" and pattern[i + 1 : i + 2] == ",":
            out.append("\\{")
            i += 1
        elif ch == "(" and (m := _FLAG_GROUP.match(pattern, i)) is not None:
            out.append("(?:)")
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _blind(items: Any) -> bool:
    c = _sre_constants
    for op, arg in items:
        if op in (c.LITERAL, c.NOT_LITERAL):
            if arg in _DIGIT_CODES:
                return False
        elif op is c.IN:
            if len({_in_class(arg, d) for d in _DIGIT_CODES}) > 1:
                return False
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if not _blind(arg[2]):
                return False
        elif op is c.SUBPATTERN:
            if not _blind(arg[3]):
                return False
        elif op is c.BRANCH:
            if not all(_blind(branch) for branch in arg[1]):
                return False
        elif op in (c.ASSERT, c.ASSERT_NOT):
            if not _blind(arg[1]):
                return False
        elif op is c.ATOMIC_GROUP:
            if not _blind(arg):
                return False
        elif op not in (c.ANY, c.AT, c.CATEGORY):
            return False  # back-references, conditionals, anything else: in doubt
    return True


def _in_class(items: Any, code: int) -> bool:
    """Whether the character ``code`` (an ASCII digit) is in a parsed ``[...]`` class."""
    c = _sre_constants
    negate, found = False, False
    for op, arg in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            found = found or arg == code
        elif op is c.RANGE:
            found = found or arg[0] <= code <= arg[1]
        elif op is c.CATEGORY:  # \d, \w hold every digit; \s, \D, \W none
            found = found or arg in (c.CATEGORY_DIGIT, c.CATEGORY_WORD, c.CATEGORY_UNI_DIGIT, c.CATEGORY_UNI_WORD)
    return found != negate


_QUANTIFIER = re2.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
_CLASS_ESCAPE = re2.compile(r"\\.")
_PLAIN_CLASS_ESCAPES = frozenset("dDwWsSntrfv\\]-.^[/")  # escapes in a class that name no digit


def digit_superset(pattern: str) -> str | None:
    """A :func:`digit_blind` pattern that matches ``zero_digits(text)`` whenever ``pattern``
    matches ``text``: each literal digit becomes ``\\d``, a class holding a digit takes all ten,
    a negated one holding a digit takes any character. For a cheap "can any line of this form
    match?" before the exact pattern. ``None`` when the pattern is beyond this (escapes that
    spell a character by number, ``\\Q..\\E``, ``\\p`` classes).
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if not nxt or nxt in "xQpPC" or nxt.isdigit():
                return None
            out.append(pattern[i : i + 2])
            i += 2
        elif ch == "{":
            q = _QUANTIFIER.match(pattern[i:])
            end = i + len(q.group(0)) if q else i + 1
            out.append(pattern[i:end])
            i = end
        elif ch == "(" and pattern.startswith("(?P<", i):
            end = pattern.find(">", i)
            if end < 0:
                return None
            out.append(pattern[i : end + 1])
            i = end + 1
        elif ch == "[":
            end = _class_end(pattern, i)
            if end < 0:
                return None
            body = pattern[i + 1 : end]
            escapes = _CLASS_ESCAPE.findall(body)
            if any(e[1] not in _PLAIN_CLASS_ESCAPES for e in escapes):
                return None  # an escape that may spell a character by number: beyond this
            has_digit = any(c in "0123456789" for c in _CLASS_ESCAPE.sub("", body))
            if not has_digit:
                out.append(pattern[i : end + 1])
            elif body.startswith("^"):
                out.append(r"[\s\S]")
            else:
                out.append("[" + body + "0-9]")
            i = end + 1
        elif ch.isdigit() and ch.isascii():
            out.append(r"\d")
            i += 1
        else:
            out.append(ch)
            i += 1
    general = "".join(out)
    try:
        re2.compile(general, options=_OPTIONS)
    except re2.error:
        return None  # e.g. a group name holding a digit, now "\\d": RE2 refuses it
    return general if digit_blind(general) else None


def _class_end(pattern: str, start: int) -> int:
    """The index of the ``]`` closing the class that opens at ``start``; -1 if it is not closed."""
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1  # a leading ] is a member
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[" and pattern[i + 1 : i + 2] == ":":
            close = pattern.find(":]", i + 2)
            if close < 0:
                return -1
            i = close + 2
            continue
        if c == "]":
            return i
        i += 1
    return -1


@dataclass(frozen=True, slots=True)
class DigitSplit:
    """A rule set split by whether a rule's match can depend on which digits a line holds.

    ``blind``'s first rule is the same for every line of one form (``zero_digits`` of the line);
    ``sensitive``'s (``None`` if empty) must be judged per line, but only on forms where
    :meth:`first_possible` says one of its rules could come first. Each rule is judged alone,
    so a line's first rule is the earlier of the two sets' first rules.
    """

    blind: RuleSet
    sensitive: RuleSet | None
    could: Any = None  # RE2 set match over the sensitive rules' digit_superset patterns, or None
    could_positions: tuple[int, ...] = ()  # its slot -> the rule's position in the whole set
    unfiltered: int = MAX_RULES  # the first position of a sensitive rule without such a pattern
    # the whole set's line-pattern slot -> its rule's position if digit-blind, else len(rules) (no
    # rule): a line's first digit-blind rule is read off the hits of the one scan of the line
    blind_slots: tuple[int, ...] = ()

    @property
    def earliest(self) -> int:
        """The earliest position :meth:`first_possible` can answer, whatever the line."""
        return min((self.unfiltered, *self.could_positions))

    def first_possible(self, zeroed_line: str) -> int:
        """The earliest position (in the whole set) of a sensitive rule that some line of this
        form could match; :data:`MAX_RULES` when none can."""
        first = self.unfiltered
        if self.could is not None:
            for slot in self.could(zeroed_line.encode("utf-8", "surrogatepass")):
                first = min(first, self.could_positions[slot])
        return first


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """``value`` exact, ``!value`` negated, ``~regex`` RE2 search."""

    name: str
    spec: str
    regex: Any = None

    @classmethod
    def build(cls, name: str, spec: str) -> LabelMatcher:
        if spec.startswith("~"):
            return cls(name, spec, compile_pattern(spec[1:]))
        return cls(name, spec)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name)
        if self.regex is not None:
            return value is not None and self.regex.search(value) is not None
        if self.spec.startswith("!"):
            return value != self.spec[1:]
        return value == self.spec


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    priority: Priority
    pattern: str = ""
    keywords: tuple[str, ...] = ()
    labels: tuple[LabelMatcher, ...] = ()
    namespaces_allow: frozenset[str] = frozenset()
    namespaces_deny: frozenset[str] = frozenset()
    action: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)
    cooldown: float = 300.0
    enabled: bool = True
    description: str = ""
    regex: Any = None
    levels: frozenset[str] = frozenset()  # empty: any level
    on: str = "line"  # what the pattern and keywords see: the raw "line" or the parsed "message"
    when: str = "always"  # remediation.when: always, or new_since_rollout (a rollback gated on the rollout)

    def matches_context(self, namespace: str, labels: Mapping[str, str]) -> bool:
        if self.namespaces_allow and namespace not in self.namespaces_allow:
            return False
        if namespace in self.namespaces_deny:
            return False
        return all(m.matches(labels) for m in self.labels)

    def matches_text(self, message: str) -> bool:
        if self.regex is not None and self.regex.search(message) is None:
            return False
        if self.keywords:
            low = message.lower()
            return any(k in low for k in self.keywords)
        return True

    def matches_level(self, level: str) -> bool:
        return not self.levels or (level if level in LEVELS else "unknown") in self.levels

    def matches(
        self,
        message: str,
        *,
        namespace: str = "",
        labels: Mapping[str, str] | None = None,
        line: str | None = None,
        level: str = "",
    ) -> bool:
        """Whether the rule picks this entry; ``line`` defaults to ``message`` (a lone message)."""
        text = message if self.on == "message" or line is None else line
        return (
            self.matches_context(namespace, labels or {})
            and (not self.levels or self.matches_level(level))
            and self.matches_text(text)
        )

    @property
    def contextual(self) -> bool:
        return bool(self.labels or self.namespaces_allow or self.namespaces_deny)

    @property
    def conditional(self) -> bool:
        """Whether more than the pattern decides: labels, namespaces, keywords or levels."""
        return self.contextual or bool(self.keywords) or bool(self.levels)


DEFAULT = Rule(name=DEFAULT_RULE, priority=Priority.P4, description="no rule matched")


@dataclass(frozen=True, slots=True)
class Classification:
    rule: Rule

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def priority(self) -> Priority:
        return self.rule.priority


class RuleSet:
    """The enabled rules in file order, with one RE2 Set over the patterns of each text they see."""

    def __init__(self, rules: list[Rule], *, source: str = "") -> None:
        if len(rules) > MAX_RULES:
            raise RuleLimitError(f"{len(rules)} rules: at most {MAX_RULES} are supported")
        self.all_rules = list(rules)
        self.rules = [r for r in rules if r.enabled]
        self.source = source
        # per text ("line", "message"): the C++ Match of its set, and set slot -> rule index
        self._sets: dict[str, tuple[Any, list[int]]] = {}
        self._always = [i for i, r in enumerate(self.rules) if not r.pattern]  # candidates for every line
        for on in ON:
            patterned = [(i, r) for i, r in enumerate(self.rules) if r.pattern and r.on == on]
            if not patterned:
                continue
            s = re2.Set.SearchSet(_SET_OPTIONS)
            for _i, r in patterned:
                s.Add(r.pattern)
            try:
                s.Compile()
            except re2.error:
                raise RuleLimitError(
                    f"the {len(patterned)} patterns of {len(self.rules)} enabled rules do not fit in one RE2 set "
                    f"({SET_MAX_MEM // (1024 * 1024)} MiB): use fewer or simpler patterns"
                ) from None
            # The C++ set behind google-re2's wrapper, called with UTF-8 bytes: the wrapper only
            # encodes the text; calling it directly saves that Python frame on the hot path.
            inner = getattr(s, "_set", None)
            self._sets[on] = (inner.Match if inner is not None else s.Match, [i for i, _r in patterned])
        line_set = self._sets.get("line")
        self._match: Any = line_set[0] if line_set else None
        # Every enabled rule is a bare pattern on the raw line (the common case, and the Go tool's
        # files): set slots are in rule order, so the first rule is the smallest slot that matched.
        self._simple = (
            line_set is not None
            and not self._always
            and len(self._sets) == 1
            and not any(r.conditional for r in self.rules)
        )
        self._by_slot = [self.rules[i] for i in line_set[1]] if line_set else []
        message_set = self._sets.get("message")
        self._line_set = line_set
        self._message_set = message_set
        # Rules without a pattern are candidates for every line whose level they take: one list
        # per level, looked up once per line instead of checking each such rule's levels.
        self._always_by_level = {
            lv: [i for i in self._always if not self.rules[i].levels or lv in self.rules[i].levels] for lv in LEVELS
        }
        # Per rule position, what more than its pattern decides (None: the pattern alone), so
        # the loop below reads one list item instead of several properties.
        self._checks: list[tuple[bool, frozenset[str], bool] | None] = [
            (r.contextual, r.levels, bool(r.keywords)) if r.conditional else None for r in self.rules
        ]
        self.uses_levels = any(r.levels for r in self.rules)
        self.uses_message = "message" in self._sets or any(r.on == "message" for r in self.rules)
        self._digit_split: DigitSplit | None = None

    def __len__(self) -> int:
        return len(self.rules)

    def digit_split(self) -> DigitSplit:
        """The rules whose match cannot depend on which digits a line holds (:func:`digit_blind`
        patterns, keywords without digits) apart from those whose match can (see
        :class:`DigitSplit`). Built once, on first use."""
        split = self._digit_split
        if split is None:
            split = self._digit_split = self._split_by_digits()
        return split

    def _split_by_digits(self) -> DigitSplit:
        sensitive = [
            (i, r)
            for i, r in enumerate(self.rules)
            if (r.pattern and not digit_blind(r.pattern)) or any(ch in "0123456789" for k in r.keywords for ch in k)
        ]
        if not sensitive:
            return DigitSplit(self, None)
        apart = {i for i, _r in sensitive}
        blind = RuleSet([r for i, r in enumerate(self.rules) if i not in apart], source=self.source)
        general: list[tuple[int, str]] = []
        unfiltered = MAX_RULES
        for i, r in sensitive:
            # keywords, and patterns on the message, see other text than the line: judged on every line
            superset = digit_superset(r.pattern) if r.pattern and r.on == "line" and not r.keywords else None
            if superset is None:
                unfiltered = min(unfiltered, i)
            else:
                general.append((i, superset))
        could = None
        if general:
            s = re2.Set.SearchSet(_SET_OPTIONS)
            try:
                for _i, pattern in general:
                    s.Add(pattern)
                s.Compile()
            except re2.error:  # too big for one set: every sensitive rule is judged on every line
                unfiltered = min(unfiltered, *(i for i, _p in general))
                general = []
            else:
                inner = getattr(s, "_set", None)
                could = inner.Match if inner is not None else s.Match
        slots = self._line_set[1] if self._line_set is not None else []
        return DigitSplit(
            blind,
            RuleSet([r for _i, r in sensitive], source=self.source),
            could,
            tuple(i for i, _p in general),
            unfiltered,
            tuple(len(self.rules) if p in apart else p for p in slots),
        )

    def line_matcher(self) -> tuple[Any, list[int]] | None:
        """For hot loops, when every enabled rule is a bare pattern on the raw line (the Go tool's
        files): the set's match (UTF-8 bytes -> the slots that matched) and slot -> position in
        :attr:`rules`; the first rule is the smallest position matched. ``None`` otherwise."""
        if not self._simple or self._line_set is None:
            return None
        return self._line_set[0], self._line_set[1]

    def by_name(self, name: str) -> Rule | None:
        for r in self.all_rules:
            if r.name == name:
                return r
        return DEFAULT if name == DEFAULT_RULE else None

    def classify(
        self,
        line: str,
        *,
        message: str | None = None,
        level: str = "",
        namespace: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Rule:
        """The first enabled rule that matches, else :data:`DEFAULT` (P4).

        ``line`` is the raw entry (what the Go tool matched); ``message`` the parsed message for
        rules with ``on: message`` (the line itself when not given); ``level`` the parsed level.
        """
        if self._simple:
            # Only plain patterns: the lowest set index that matched is the first rule in order.
            hits = self._match(line.encode("utf-8", "surrogatepass"))
            return self._by_slot[min(hits)] if hits else DEFAULT
        lv = level if level in _LEVEL_SET else "unknown"
        candidates: list[int]
        line_set = self._line_set
        if line_set is not None and (hits := line_set[0](line.encode("utf-8", "surrogatepass"))):
            index = line_set[1]
            candidates = [index[h] for h in hits]
        else:
            candidates = []
        message_set = self._message_set
        text = line if message is None else message
        if message_set is not None and (hits := message_set[0](text.encode("utf-8", "surrogatepass"))):
            index = message_set[1]
            candidates.extend(index[h] for h in hits)
        always = self._always_by_level[lv]
        if always:
            candidates.extend(always)
        if not candidates:
            return DEFAULT
        if len(candidates) > 1:
            candidates.sort()
        rules = self.rules
        checks = self._checks
        for i in candidates:
            check = checks[i]
            if check is None:
                return rules[i]
            rule: Rule = rules[i]
            contextual, levels, keywords = check
            if contextual and not rule.matches_context(namespace, labels or {}):
                continue
            if levels and lv not in levels:
                continue
            if keywords and not rule.matches_text(text if rule.on == "message" else line):
                continue
            return rule
        return DEFAULT
