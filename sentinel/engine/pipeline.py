"""From log entries to group deltas: parse, fingerprint, classify, aggregate. The hot path.

Everything here is computation over values; the only state is bounded caches (per stream labels,
per message) that make repeated lines cheap. ``poll_once`` in ``sentinel.engine.runtime`` feeds
pages from a source through :meth:`Pipeline.process` and hands the deltas to the store.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from sentinel.core.fingerprint import Fingerprinter, zero_digits
from sentinel.core.model import Fingerprint, GroupDelta, LogEntry
from sentinel.core.parsing import LineParser, Subject, parse_line, workload_of
from sentinel.core.rules import DEFAULT, Rule, RuleSet

MAX_SAMPLES_PER_DELTA = 5
CACHE_LIMIT = 200_000
KEYS_PER_STREAM_LIMIT = 10_000
SLOTS_LIMIT = 100_000  # slots a batch keeps (a poll of a million distinct lines must not keep them all)

_ZEROS = bytes.maketrans(b"0123456789", b"0000000000")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored after; nesting is fine).

    Reading and grouping a window allocate many small objects that reference counting frees;
    letting the cyclic collector scan the growing caches meanwhile costs ~10% of the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def group_key(namespace: str, workload: str, container: str, template_key: str, level: str) -> str:
    """The stored group id: namespace + workload + container + level + template key, 16 hex chars.

    The line's own level is part of the statement: ``log.Warn(x)`` (a retry) and ``log.Error(x)``
    (the request failed) are two statements an SRE ranks apart, so they are two groups."""
    raw = f"{namespace}\x00{workload}\x00{container}\x00{template_key}\x00{level}".encode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


@dataclass(slots=True)
class Batch:
    """What one call to ``process`` produced."""

    deltas: dict[str, GroupDelta] = field(default_factory=dict)
    lines: int = 0
    rule_hits: dict[str, int] = field(default_factory=dict)
    last_ts_ns: int = 0
    aliases: dict[str, str] = field(default_factory=dict)  # template keys replaced by merges
    settled: bool = False  # every delta keyed by a template current at the last settle
    # What the pipeline that fills this batch remembers between its pages (see Pipeline._process).
    _seen: _Seen | None = field(default=None, repr=False, compare=False)


# What one raw line adds to, once its stream, rule and template are known: (delta, pod, rule name).
_Slot = tuple[GroupDelta, str, str]


@dataclass(slots=True)
class _Seen:
    """A batch's slots per stream, valid for one pipeline while no template merges.

    ``streams``: id(stream) -> (stream, template key + level -> delta, raw line -> slot, form ->
    slot); the stream is held so that its id cannot be reused. A form (``zero_digits`` of a line)
    has a slot when every line of it goes the same way: same message place, level, template and
    rule (no rule that tells digits apart could come first).
    """

    owner: object
    merges: int
    streams: dict[int, tuple[_Stream, dict[str, GroupDelta], dict[str, _Slot], dict[str, _Slot]]] = field(
        default_factory=dict
    )
    slots: int = 0  # how many slots the per-stream dicts hold (at most SLOTS_LIMIT)

    def drop(self) -> None:
        """Forget every slot (in place: a running loop holds the per-stream dicts)."""
        for _stream, by_template, by_line, by_form in self.streams.values():
            by_template.clear()
            by_line.clear()
            by_form.clear()
        self.slots = 0


@dataclass(frozen=True, slots=True)
class _Stream:
    labels: Mapping[str, str]
    namespace: str
    pod: str
    container: str
    workload: str
    group_keys: dict[str, str] = field(default_factory=dict)  # template key -> group key (a cache)

    @classmethod
    def of(cls, labels: Mapping[str, str], workloads: Callable[[Mapping[str, str]], str] = workload_of) -> _Stream:
        return cls(
            labels,
            labels.get("namespace") or "",
            labels.get("pod") or "",
            labels.get("container") or "",
            workloads(labels),
        )


def _content(labels: Mapping[str, str]) -> tuple[str, ...]:
    """A label set as one flat tuple, its names then its values: unambiguous (the names are half
    of it), and a third of the cost of a tuple of pairs (one tuple, not one per label)."""
    return (*labels, *labels.values())


def _delta(
    deltas: dict[str, GroupDelta],
    key: str,
    namespace: str,
    workload: str,
    container: str,
    pod: str,
    f: Fingerprint,
    rule: Rule,
    ts: float,
    level: str,
    message: str,
) -> GroupDelta:
    """The batch's delta under ``key``, made from its first line if the batch has none yet."""
    d = deltas.get(key)
    if d is None:
        d = deltas[key] = GroupDelta(
            key=key,
            namespace=namespace,
            workload=workload,
            container=container,
            template=f.template,
            rule=rule.name,
            priority=rule.priority,
            first_seen=ts,
            last_seen=ts,
            level=level,
            template_key=f.key,
            message=message,
            last_pod=pod,
        )
    return d


@dataclass(frozen=True, slots=True)
class Explained:
    """Why one line landed where it did (``analyze --explain``, the rule tester)."""

    group: str
    template: str
    rule: str
    priority: str
    message: str
    namespace: str
    workload: str
    container: str
    level: str = ""


class Pipeline:
    """Stateless apart from caches; one per rules version (``with_rules`` keeps the fingerprinter)."""

    def __init__(
        self,
        *,
        rules: RuleSet,
        fingerprinter: Fingerprinter | None = None,
        workloads: Callable[[Mapping[str, str]], str] | None = None,
    ) -> None:
        """``workloads`` names a stream's workload from its labels (default: pod-name rules;
        ``sentinel.remediation.owners.OwnerResolver.workload_of`` asks the cluster)."""
        self.rules = rules
        self.fingerprinter = fingerprinter or Fingerprinter()
        self.workloads = workloads or workload_of
        self._streams: dict[tuple[str, ...], _Stream] = {}
        # Caches hold only strings and ints (rule positions in ``_rule_list``, -1 = look at the
        # labels), so the garbage collector untracks them instead of scanning them again and again.
        # raw line -> message, level, rule position, what an event is about (else None), and
        # the message's fingerprint id (``Fingerprinter.fingerprint_id``)
        self._lines: dict[str, tuple[str, str, int, Subject | None, int]] = {}
        self._parser = LineParser(limit=CACHE_LIMIT)  # parses each statement once, not each line
        # A form (zero_digits of a line that has a cut, see LineParser) -> where its message is, its
        # level, the position of its first digit-blind rule (-1: look at the labels), its message's
        # fingerprint id, and whether a rule that tells digits apart could come first (then each
        # line is judged by those rules): a new line of a known form costs a lookup and a slice.
        self._forms: dict[str, tuple[int, int, str, int, int, bool]] = {}
        # How urgent each rule is: (priority rank, position in the file); a group takes the most
        # urgent rule any of its lines matched, so the result does not depend on line order.
        self._urgency = {r.name: (r.priority.rank, i) for i, r in enumerate(rules.rules)}
        self._urgency[DEFAULT.name] = (DEFAULT.priority.rank, len(rules.rules))
        self._classified: dict[tuple[str, str, int], Rule] = {}
        self._rule_list: list[Rule] = [*rules.rules, DEFAULT]
        self._position = {id(r): i for i, r in enumerate(self._rule_list)}
        self._contextual = any(r.contextual for r in rules.rules)
        self._merges_seen = self.fingerprinter.merges

    def with_rules(self, rules: RuleSet) -> Pipeline:
        return Pipeline(rules=rules, fingerprinter=self.fingerprinter, workloads=self.workloads)

    def _stream(self, labels: Mapping[str, str]) -> _Stream:
        """The stream for a label set, by content: each Loki page brings new label dicts. (Keyed in
        the labels' order, which Loki keeps for a stream: the same labels in another order make
        another stream object with the same namespace, workload and container, so the same groups.)"""
        content = _content(labels)
        s = self._streams.get(content)
        if s is None:
            if len(self._streams) > CACHE_LIMIT:
                self._streams.clear()
                self._classified.clear()  # keyed on stream identity for contextual rules
            s = self._streams[content] = _Stream.of(labels, self.workloads)
        return s

    def _classify(self, line: str, message: str, level: str, stream: _Stream) -> Rule:
        """The rule for a raw line in a stream, when some rule looks at labels or namespaces."""
        key = (line, stream.namespace, id(stream.labels))
        rule = self._classified.get(key)
        if rule is None:
            if len(self._classified) > CACHE_LIMIT:
                self._classified.clear()
            rule = self.rules.classify(
                line, message=message, level=level, namespace=stream.namespace, labels=stream.labels
            )
            self._classified[key] = rule
        return rule

    def fingerprint(self, message: str) -> Fingerprint:
        return self.fingerprinter.fingerprint(message)

    def process(self, entries: Iterable[LogEntry], *, into: Batch | None = None) -> Batch:
        """Aggregate ``entries`` into one delta per group (then :meth:`settle`). The hot path.

        Per line: one cache lookup for the stream, one for the raw line (message, level and, when
        no rule looks at labels, the rule), the fingerprint, one lookup for the delta of that
        stream and template; parsing runs once per distinct line, classification once per distinct
        message, and a group takes the most urgent rule of its lines.
        ``into`` accumulates several pages in one batch (cheaper than merging batches).
        """
        with paused_gc():
            batch = self._process(entries, into if into is not None else Batch())
        self.settle(batch)
        return batch

    def _process(self, entries: Iterable[LogEntry], batch: Batch) -> Batch:
        deltas = batch.deltas
        fingerprinter = self.fingerprinter
        fingerprint_id = fingerprinter.fingerprint_id
        fingerprint_id_zeroed = fingerprinter.fingerprint_id_zeroed
        parse = self._parser.parse
        cut_of = self._parser.cut
        forms_get = self._forms.get
        forms = self._forms
        split = self.rules.digit_split()
        blind_classify = split.blind.classify
        digits_apart = split.sensitive is not None  # some rule tells one digit from another
        digit_classify = (split.sensitive or split.blind).classify
        first_possible = split.first_possible
        earliest_sensitive = split.earliest
        fps = fingerprinter.fingerprints
        contextual = self._contextual
        urgency = self._urgency
        # Per stream, raw line -> slot: what the line adds to. Every field of a slot but the
        # delta's counts is settled when the slot is made (the pod joins the delta's pods, the
        # delta takes the rule if it is more urgent: doing either again changes nothing), so a
        # line seen before in its stream in this batch costs two lookups and the counting. Kept
        # in the batch across pages; a template merge can change lines' deltas, so all slots are
        # dropped when one happens.
        seen = batch._seen
        if seen is None or seen.owner is not self or seen.merges != fingerprinter.merges:
            seen = batch._seen = _Seen(self, fingerprinter.merges)
        streams = seen.streams
        # id(labels) -> (raw line -> slot, stream, template key + level -> delta, form -> slot,
        # labels) for this call; the labels are held, so an id cannot be reused meanwhile.
        local: dict[
            int, tuple[dict[str, _Slot], _Stream, dict[str, GroupDelta], dict[str, _Slot], Mapping[str, str]]
        ] = {}
        local_get = local.get
        lines = self._lines
        lines_get = lines.get
        classify = self.rules.classify
        position_of = self._position
        rule_list = self._rule_list
        no_rule = len(rule_list) - 1  # DEFAULT's position
        # Only bare patterns on the raw line: the first rule is the smallest position matched.
        matcher = self.rules.line_matcher()
        match, slot_position = matcher if matcher is not None else (None, [])
        blind_position = split.blind_slots  # set slot -> its rule's position if digit-blind, else no_rule
        rule_names: list[str] = []
        add_rule = rule_names.append
        last = 0
        for ts_ns, labels, line in entries:
            here = local_get(id(labels))
            if here is None:
                stream = self._stream(labels)
                kept = streams.get(id(stream))
                if kept is None:
                    kept = streams[id(stream)] = (stream, {}, {}, {})
                here = local[id(labels)] = (kept[2], stream, kept[1], kept[3], labels)
            by_line, stream, by_template, by_form, _labels = here
            # zero_digits, inlined: lines equal but for their digits are one form of one statement.
            # The form first: most lines take their form's slot, and a line's slot, when it has
            # one beside its form's, names the same delta, pod and rule (see _Seen).
            zeroed = line.encode("ascii").translate(_ZEROS).decode("ascii") if line.isascii() else zero_digits(line)
            slot = by_form.get(zeroed)
            if slot is None:
                slot = by_line.get(line)
            if slot is None:  # the first line of its form (or one judged alone) in its stream in this batch
                form = forms_get(zeroed)
                same = False  # whether every line of this form in this stream takes the slot made below
                if form is not None:  # a known form: its message's place, level, template and rule are known
                    start, end, level, position, mid, check = form
                    message = line[start:end]
                    subject = None
                    same = not check and position >= 0
                    if check:  # a rule that tells digits apart could come first: judge this line
                        other = position_of[id(digit_classify(line, message=message, level=level))]
                        if other < position:
                            position = other
                else:
                    hit = lines_get(line)
                    if hit is None:
                        message, level, subject, zeroed_message = parse(line, zeroed)
                        if subject is not None:  # a Kubernetes event: grouped under what it is about
                            subject = self._subject(subject)
                        # the rule sees the raw line, as the Go tool's did (and the message and level)
                        if match is not None:
                            hits = match(line.encode("utf-8", "surrogatepass"))  # every rule that matched
                            position = slot_position[min(hits)] if hits else no_rule
                        elif contextual:
                            position = -1
                        else:
                            position = position_of[id(classify(line, message=message, level=level))]
                        if zeroed_message is None:
                            mid = fingerprint_id(message)
                            if len(lines) > CACHE_LIMIT:
                                lines.clear()
                            lines[line] = (message, level, position, subject, mid)
                        else:  # the first line of a form: what holds for every line of it
                            mid = fingerprint_id_zeroed(message, zeroed_message)
                            blind, check = position, False
                            if digits_apart and position >= 0:
                                if match is not None:  # the first digit-blind rule among those that matched
                                    blind = min(map(blind_position.__getitem__, hits), default=no_rule)
                                else:
                                    blind = position_of[id(blind_classify(line, message=message, level=level))]
                                # no sensitive rule can come before ``blind``: no need to look
                                check = blind > earliest_sensitive and first_possible(zeroed) < blind
                            cut = cut_of(zeroed)  # the parser has just learned it
                            if cut is not None:
                                if len(forms) > CACHE_LIMIT:
                                    forms.clear()
                                forms[zeroed] = (cut[0], cut[1], level, blind, mid, check)
                        if fingerprinter.merges != seen.merges:  # templates changed: slots may name stale deltas
                            seen.merges = fingerprinter.merges
                            seen.drop()
                    else:
                        message, level, position, subject, mid = hit
                rule = rule_list[position] if position >= 0 else self._classify(line, message, level, stream)
                f = fps[mid]
                ts = ts_ns / 1e9
                if subject is not None:
                    d = self._event_delta(deltas, subject, f, rule, ts, level, message)
                    pod = subject[2]
                else:
                    tkey = f.key + level  # the template key and the level
                    found = by_template.get(tkey)
                    if found is not None:
                        d = found
                    else:
                        known = stream.group_keys
                        key = known.get(tkey)
                        if key is None:
                            if len(known) > KEYS_PER_STREAM_LIMIT:
                                known.clear()
                            key = known[tkey] = group_key(
                                stream.namespace, stream.workload, stream.container, f.key, level
                            )
                        d = _delta(
                            deltas, key, stream.namespace, stream.workload, stream.container, stream.pod,
                            f, rule, ts, level, message,
                        )  # fmt: skip
                        by_template[tkey] = d
                    pod = stream.pod
                rname = rule.name
                if rname != d.rule and urgency[rname] < urgency[d.rule]:
                    d.rule, d.priority = rname, rule.priority
                if pod:
                    d.pods[pod] = None
                if seen.slots >= SLOTS_LIMIT:
                    seen.drop()  # a cache: every slot can be made again, to the same delta
                seen.slots += 1
                slot = (d, pod, rname)
                if same:
                    by_form[zeroed] = slot
                else:
                    by_line[line] = slot
            d, pod, rname = slot
            ts = ts_ns / 1e9
            if ts_ns > last:
                last = ts_ns
            d.count += 1
            if ts < d.first_seen:
                d.first_seen = ts
            elif ts >= d.last_seen:
                d.last_seen = ts
                d.last_pod = pod
            samples = d.samples
            if len(samples) < MAX_SAMPLES_PER_DELTA:
                samples.append(line)
            minute = (ts_ns >> 11) // 29_296_875  # = ts_ns // 60e9 (60e9 = 2**11 * 29,296,875): a fast divisor
            counts = d.minute_counts
            counts[minute] = counts.get(minute, 0) + 1
            add_rule(rname)
        batch.lines += len(rule_names)
        batch.last_ts_ns = max(batch.last_ts_ns, last)
        hits = batch.rule_hits
        for name, n in Counter(rule_names).items():
            hits[name] = hits.get(name, 0) + n
        return batch

    def _subject(self, subject: Subject) -> Subject:
        """An event's (namespace, workload, pod): the pod's workload as the resolver sees it."""
        namespace, workload, pod = subject
        if pod:
            workload = self.workloads({"namespace": namespace, "pod": pod}) or workload
        return namespace, workload, pod

    @staticmethod
    def _event_delta(
        deltas: dict[str, GroupDelta], subject: Subject, f: Fingerprint, rule: Rule, ts: float, level: str, message: str
    ) -> GroupDelta:
        """The delta of an event's group: its subject's namespace and workload, no container."""
        namespace, workload, pod = subject
        key = group_key(namespace, workload, "", f.key, level)
        return _delta(deltas, key, namespace, workload, "", pod, f, rule, ts, level, message)

    def settle(self, batch: Batch) -> None:
        """Templates that merged while the batch ran: re-key its deltas, report the aliases."""
        merges = self.fingerprinter.merges
        if merges == self._merges_seen and batch.settled:
            return  # no template merged since every delta of this batch was keyed
        if merges != self._merges_seen:
            batch.aliases = self.fingerprinter.aliases()  # the store folds its groups with these
        self._merges_seen = merges
        batch.settled = True
        aliases = batch.aliases
        if not aliases:
            return
        deltas = batch.deltas
        stale = [key for key, d in deltas.items() if d.template_key in aliases]
        if stale and batch._seen is not None:
            batch._seen.drop()  # slots may name the deltas folded below
        fp = self.fingerprinter.fingerprint
        for old_key in stale:
            d = deltas.pop(old_key)
            f = fp(d.message)  # the message is known: this only reads its current template
            d.template_key, d.template = f.key, f.template
            d.key = group_key(d.namespace, d.workload, d.container, f.key, d.level)
            mine = deltas.get(d.key)
            if mine is None:
                deltas[d.key] = d
                continue
            mine.count += d.count
            mine.first_seen = min(mine.first_seen, d.first_seen)
            if d.last_seen > mine.last_seen:
                mine.last_seen, mine.last_pod = d.last_seen, d.last_pod
            mine.pods.update(d.pods)
            mine.samples = (mine.samples + d.samples)[-MAX_SAMPLES_PER_DELTA:]
            if self._urgency.get(d.rule, (9, 0)) < self._urgency.get(mine.rule, (9, 0)):
                mine.rule, mine.priority = d.rule, d.priority
            for m, k in d.minute_counts.items():
                mine.minute_counts[m] = mine.minute_counts.get(m, 0) + k

    def explain(self, entry: LogEntry, *, learn: bool = True) -> Explained:
        """Why ``entry`` lands where it does. ``learn=False`` (testers, previews) changes no state:
        the fingerprinter is only peeked at and no cache is filled."""
        labels = entry.labels
        stream = self._streams.get(_content(labels)) or _Stream.of(labels, self.workloads)
        message, level, subject = parse_line(entry.line)
        rule = self.rules.classify(entry.line, message=message, level=level, namespace=stream.namespace, labels=labels)
        f = self.fingerprinter.fingerprint(message) if learn else self.fingerprinter.peek(message)
        namespace, workload, container = stream.namespace, stream.workload, stream.container
        if subject is not None:
            namespace, workload, _pod = self._subject(subject)
            container = ""
        return Explained(
            group=group_key(namespace, workload, container, f.key, level),
            template=f.template,
            rule=rule.name,
            priority=rule.priority.value,
            message=message,
            namespace=namespace,
            workload=workload,
            container=container,
            level=level,
        )
