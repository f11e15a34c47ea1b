"""config.yaml and rules.yaml: schemas, loading, validation, durations, secrets.

Every problem in a file is reported at once, each naming the file and the key path or rule; a
file with any error loads nothing. Unknown keys are warnings (``Loaded.warnings``), not errors,
so that files written for the Go tool (or a newer version) still load.

Secrets (Loki password and bearer token, the API token) may be written in the file, or come from
environment variables, or from files named by ``*_file`` keys or ``*_FILE`` variables; the
environment wins. They are ``SecretStr`` and never appear in reprs, logs or API responses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sentinel.core.actions import validate_params
from sentinel.core.durations import parse_duration
from sentinel.core.model import Priority
from sentinel.core.rules import LEVELS as RULE_LEVELS
from sentinel.core.rules import MAX_RULES, LabelMatcher, PatternError, Rule, RuleLimitError, RuleSet, compile_pattern
from sentinel.core.rules import ON as RULE_ON
from sentinel.errors import ConfigError, cap

ENV_PREFIX = "KUBE_SENTINEL_"


# Seconds, written in files as ``30s``, ``5m``, ``1h30m`` (or a bare number of seconds).
Duration = Annotated[float, BeforeValidator(parse_duration)]


class Section(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)


class LokiConfig(Section):
    url: str = "http://loki.monitoring:3100"
    query: str = '{namespace=~".+"} |~ "(?i)(error|fatal|panic|exception|fail)"'
    poll_interval: Duration = 30.0
    lookback: Duration = 300.0
    max_lookback: Duration = 3600.0
    ingest_delay: Duration = 10.0  # read up to this long ago: lines reach Loki after their timestamp
    tenant_id: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    password_file: str = ""
    bearer_token: SecretStr = SecretStr("")
    bearer_token_file: str = ""
    tls_verify: bool = True
    ca_file: str = ""
    timeout: Duration = 30.0
    page_limit: int = Field(default=1000, ge=1, le=5000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "@" in v.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("must not carry credentials (user:password@); use loki.username and loki.password")
        return v.rstrip("/")

    @field_validator("lookback", "max_lookback", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        if not v.strip().startswith("{"):
            raise ValueError('must be a LogQL log query starting with a stream selector, like {namespace=~".+"}')
        return v

    @field_validator("poll_interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if v < 1:
            raise ValueError("must be at least 1s")
        return v


class KubernetesConfig(Section):
    in_cluster: bool = True
    kubeconfig: str = ""
    context: str = ""


class WebConfig(Section):
    listen: str = ":8080"
    # How people reach the console (e.g. https://sentinel.example.com): notifications link to
    # ``external_url + /errors/{id}``. Empty: the link is a path only.
    external_url: str = ""

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


class RemediationConfig(Section):
    enabled: bool = True
    dry_run: bool = False
    max_actions_per_hour: int = Field(default=50, ge=0)
    per_workload_per_hour: int = Field(default=3, ge=0)
    excluded_namespaces: list[str] = Field(default_factory=lambda: ["kube-system"])
    breaker_threshold: int = Field(default=3, ge=1)
    effectiveness_window: Duration = 300.0

    @field_validator("effectiveness_window")
    @classmethod
    def _window(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v


class StoreConfig(Section):
    type: Literal["memory", "tinydb", "postgresql"] = "memory"
    path: str = "data/sentinel.json"
    # TinyDB: how many files the groups are spread over (fixed when the store is created).
    shards: int = Field(default=1024, ge=1, le=65536)
    # PostgreSQL (several replicas share it): a libpq URL or key=value string, from the file, from
    # ``url_file`` or from $KUBE_SENTINEL_STORE_URL(_FILE); the password may come apart the same way
    # (``password_file``, $KUBE_SENTINEL_STORE_PASSWORD(_FILE)). Both are secrets: never shown.
    url: SecretStr = SecretStr("")
    url_file: str = ""
    password: SecretStr = SecretStr("")
    password_file: str = ""
    connect_timeout: Duration = Field(default=10.0, gt=0)


class ApiConfig(Section):
    token: SecretStr = SecretStr("")
    token_file: str = ""


class ConsoleConfig(Section):
    """The Streamlit console. Without ``api.token`` the console is read-only, like the API, unless
    ``allow_changes_without_token`` says otherwise (the demo does); the console then shows a banner."""

    allow_changes_without_token: bool = False


class GrafanaConfig(Section):
    """Where "Open in Grafana Explore" links go: ``url`` (e.g. https://grafana.example.com) and the
    uid of its Loki datasource. Empty ``url``: no link, the LogQL query is still shown."""

    url: str = ""
    loki_datasource_uid: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class LifecycleConfig(Section):
    resolve_after: Duration = 3600.0
    burst_factor: float = Field(default=5.0, gt=1)


class RetentionConfig(Section):
    max_age: Duration = 7 * 86400.0
    # Sized for the shipped 512 Mi limit with room (see sentinel/store/budget.py and `check`).
    max_groups: int = Field(default=40_000, ge=1)
    max_records: int = Field(default=20_000, ge=1)


_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class LeaderElectionConfig(Section):
    """Several replicas: only the holder of a ``coordination.k8s.io`` Lease polls and remediates."""

    enabled: bool = False
    lease_name: str = "kube-sentinel"
    # Empty: $POD_NAMESPACE (downward API), else the service account's namespace, else kube-sentinel.
    namespace: str = ""
    # Empty: $POD_NAME (downward API), else hostname-pid.
    identity: str = ""
    lease_duration: Duration = 15.0
    renew_every: Duration = 5.0

    @field_validator("lease_name")
    @classmethod
    def _lease_name(cls, v: str) -> str:
        if not _DNS1123.fullmatch(v) or len(v) > 253:
            raise ValueError(f"must be a lowercase DNS name (a-z, 0-9, '-', '.'), got {v!r}")
        return v

    @field_validator("renew_every")
    @classmethod
    def _renew_every(cls, v: float) -> float:
        if v < 1:
            raise ValueError("must be at least 1s")
        return v

    @model_validator(mode="after")
    def _timing(self) -> LeaderElectionConfig:
        # The leader steps down lease_duration - renew_every after its last renewal, which must leave
        # room for at least one missed renewal and still be before anyone else may take over.
        if self.lease_duration <= 2 * self.renew_every:
            raise ValueError(
                f"lease_duration ({self.lease_duration:g}s) must be more than twice renew_every "
                f"({self.renew_every:g}s), e.g. 15s and 5s"
            )
        return self


NotifyEvent = Literal["new", "regressed", "escalated", "remediation_acted", "remediation_failed"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("new", "regressed", "escalated", "remediation_acted", "remediation_failed")


class DestinationConfig(Section):
    """One notification destination and the selector of what it receives.

    The URL (a Slack webhook URL is itself a secret) and the bearer token come from the file, or
    from ``url_file``/``token_file``, or from the environment variables named by ``url_env``/``token_env``.
    """

    name: str = Field(min_length=1, max_length=63)
    type: Literal["webhook", "slack", "alertmanager"]
    url: SecretStr = SecretStr("")
    url_file: str = ""
    url_env: str = ""
    token: SecretStr = SecretStr("")
    token_file: str = ""
    token_env: str = ""
    min_priority: Priority = Priority.P4  # priority at or above (P1 is the highest)
    namespaces: list[str] = Field(default_factory=list)  # empty: all
    rules: list[str] = Field(default_factory=list)  # empty: all
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))
    rate_limit: int = Field(default=30, ge=1)  # messages per minute, at most
    timeout: Duration = 5.0
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff: Duration = 1.0  # first retry delay; doubles each attempt, at most 60s

    @field_validator("min_priority", mode="before")
    @classmethod
    def _priority(cls, v: object) -> Priority:
        return Priority.parse(v)

    @field_validator("timeout", "backoff")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v


class NotificationsConfig(Section):
    destinations: list[DestinationConfig] = Field(default_factory=list)
    queue_size: int = Field(default=1000, ge=1)  # per destination; past it messages are dropped (counted)
    failing_after: int = Field(default=3, ge=1)  # failed deliveries in a row that mark a destination failing

    @model_validator(mode="after")
    def _unique(self) -> NotificationsConfig:
        seen: set[str] = set()
        for d in self.destinations:
            if d.name in seen:
                raise ValueError(f"destinations: duplicate name {d.name!r}")
            seen.add(d.name)
        return self


class Config(Section):
    loki: LokiConfig = Field(default_factory=LokiConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    rules_file: str = "/etc/kube-sentinel/rules.yaml"
    store: StoreConfig = Field(default_factory=StoreConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    leader_election: LeaderElectionConfig = Field(default_factory=LeaderElectionConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A section whose keys are all commented out (``api:`` alone) means its defaults."""
        if isinstance(data, dict):
            return {
                k: ({} if v is None and k in cls.model_fields and k != "rules_file" else v) for k, v in data.items()
            }
        return data


def parse_listen(value: str) -> tuple[str, int]:
    """``":8080"`` -> ("0.0.0.0", 8080); ``"127.0.0.1:9000"`` -> ("127.0.0.1", 9000)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address must be HOST:PORT or :PORT, got {value!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


# -- rules ------------------------------------------------------------------------------------


class MatchSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    pattern: str = ""
    keywords: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    namespaces: list[str] = Field(default_factory=list)
    levels: list[str] | str = Field(default_factory=list)  # [error, fatal], or "any" (ignores the level)
    on: str = "line"  # what pattern and keywords see: the raw "line" (as the Go tool) or the "message"


class RemediationSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    action: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)
    cooldown: Duration = 300.0


class RuleSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    description: str = ""
    match: MatchSpec
    priority: Priority
    remediation: RemediationSpec = Field(default_factory=RemediationSpec)
    enabled: bool = True

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: object) -> Priority:
        return Priority.parse(v)


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    rules: list[Any] = Field(default_factory=list)


# -- loading ------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A loaded file plus the warnings it produced (unknown keys, deprecated spellings)."""

    config: Config
    path: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoadedRules:
    ruleset: RuleSet
    path: str
    warnings: list[str] = field(default_factory=list)


# Limits on what a config or rules file may be, so that a hostile file fails fast and small.
MAX_FILE_BYTES = 4 * 1024 * 1024  # 4 MiB: room for ~20,000 ordinary rules
MAX_DEPTH = 64  # nested mappings/sequences
MAX_ALIAS_NODES = 10_000  # nodes that aliases (*name) may add in all, counting what each expands to


class _Refused(yaml.YAMLError):
    """A file the loader will not read further; ``problem_mark`` says where."""

    def __init__(self, problem: str, mark: Any) -> None:
        self.problem = problem
        self.problem_mark = mark
        super().__init__(problem)


_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


def _check_structure(text: str) -> None:
    """One pass over the parse events: refuse deep nesting and aliases that expand too far.

    Each node's weight is how many nodes it stands for once its aliases are expanded; an alias
    adds its anchor's weight to the total, which is bounded by :data:`MAX_ALIAS_NODES`.
    """
    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, weight so far] per open collection
    expanded = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            weight = anchors.get(event.anchor or "", 1)
            expanded += weight
            if expanded > MAX_ALIAS_NODES:
                raise _Refused(
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes (at *{event.anchor}); "
                    "write the values out instead",
                    event.start_mark,
                )
            stack[-1][1] += weight
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = 1
            stack[-1][1] += 1
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(stack) > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            stack.append([event.anchor, 1])
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            anchor, weight = stack.pop()
            if anchor:
                anchors[anchor] = weight
            stack[-1][1] += weight


class _BoundedLoader(_Loader):  # type: ignore[valid-type,misc]
    """The safe loader, refusing duplicate keys in a mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            key = (key_node.tag, str(key_node.value))
            if key in seen:
                shown = cap(key[1], 60)
                raise _Refused(f"duplicate key {shown!r} (lines {seen[key]} and {line})", key_node.start_mark)
            seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _one_line(text: object, limit: int = 200) -> str:
    return cap(" ".join(str(text).split()), limit)


def _read_yaml(path: str | Path, what: str) -> Any:
    """Parse ``path`` as YAML: size, encoding, nesting, aliases and duplicate keys checked first.

    Every refusal is one ``ConfigError`` line naming the file and the problem (with the line and
    column, or the byte offset, where there is one).
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{p}: {what} file not found") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot read {what} file: {err.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{p}: {what} file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{p}: not UTF-8: byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}); save the file as UTF-8"
        ) from None
    try:
        _check_structure(text)
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a safe loader, with limits
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        verb = "refused" if isinstance(err, _Refused) else "not valid YAML"
        raise ConfigError(f"{p}: {verb}{where}: {_one_line(problem)}") from None
    except RecursionError:
        raise ConfigError(f"{p}: refused: nested too deep") from None


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _problems(err: ValidationError, prefix: str = "") -> list[str]:
    problems = []
    for e in err.errors():
        loc = _loc(tuple(e["loc"]))
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] in (
            "string_type",
            "int_type",
            "bool_type",
            "float_type",
            "list_type",
            "dict_type",
            "int_parsing",
            "bool_parsing",
            "float_parsing",
            "model_type",
        ):
            shown = "(hidden)" if _is_secret(e["loc"]) else cap(repr(e.get("input")), 80)
            msg = f"{msg} (got {type(e.get('input')).__name__} {shown})"
        problems.append(f"{prefix}{loc}: {msg}")
    return problems


SECRET_KEYS = frozenset({"password", "bearer_token", "token", "url"})


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    """A secret's value is never echoed in an error, whatever its type."""
    return any(part in SECRET_KEYS for part in loc)


def _unknown_keys(model: BaseModel, prefix: str) -> list[str]:
    warnings = []
    for key in model.model_extra or {}:
        warnings.append(f"{prefix}{key}: unknown key, ignored")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            warnings.extend(_unknown_keys(value, f"{prefix}{name}."))
    return warnings


def _secret_from_env(config: Config, env: Mapping[str, str], base_dir: Path) -> list[str]:
    """Fill secrets from ``KUBE_SENTINEL_*`` variables or ``*_file`` paths; returns problems."""
    problems: list[str] = []

    def pick(var: str, file_key: str, current: SecretStr) -> SecretStr:
        if env.get(ENV_PREFIX + var):
            return SecretStr(env[ENV_PREFIX + var])
        file_path = env.get(ENV_PREFIX + var + "_FILE") or file_key
        if file_path:
            p = Path(file_path)
            if not p.is_absolute():
                p = base_dir / p
            try:
                return SecretStr(p.read_text(encoding="utf-8").strip())
            except OSError as err:
                problems.append(f"{var.lower()} file {p}: cannot read: {err.strerror}")
        return current

    config.loki.password = pick("LOKI_PASSWORD", config.loki.password_file, config.loki.password)
    config.loki.bearer_token = pick("LOKI_BEARER_TOKEN", config.loki.bearer_token_file, config.loki.bearer_token)
    config.api.token = pick("API_TOKEN", config.api.token_file, config.api.token)
    config.store.url = pick("STORE_URL", config.store.url_file, config.store.url)
    config.store.password = pick("STORE_PASSWORD", config.store.password_file, config.store.password)
    if config.store.type == "postgresql" and not config.store.url.get_secret_value():
        problems.append(
            "store.url: required when store.type is postgresql (or store.url_file, KUBE_SENTINEL_STORE_URL)"
        )
    problems.extend(_destination_secrets(config, env, base_dir))
    if env.get(ENV_PREFIX + "LOKI_USERNAME"):
        config.loki.username = env[ENV_PREFIX + "LOKI_USERNAME"]
    if env.get(ENV_PREFIX + "LOKI_URL"):
        config.loki.url = env[ENV_PREFIX + "LOKI_URL"].rstrip("/")
    return problems


def _destination_secrets(config: Config, env: Mapping[str, str], base_dir: Path) -> list[str]:
    """Each destination's URL and token from its ``*_env`` variable or ``*_file``; the URL is required."""
    problems: list[str] = []
    for i, d in enumerate(config.notifications.destinations):
        where = f"notifications.destinations[{i}] ({d.name})"
        for key in ("url", "token"):
            var = getattr(d, f"{key}_env")
            file_key = getattr(d, f"{key}_file")
            if var:
                if not env.get(var):
                    problems.append(f"{where}.{key}_env: environment variable {var} is not set")
                    continue
                setattr(d, key, SecretStr(env[var].strip()))
            elif file_key:
                p = Path(file_key)
                if not p.is_absolute():
                    p = base_dir / p
                try:
                    setattr(d, key, SecretStr(p.read_text(encoding="utf-8").strip()))
                except OSError as err:
                    problems.append(f"{where}.{key}_file: {p}: cannot read: {err.strerror}")
                    continue
        url = d.url.get_secret_value()
        if not url and not any(p.startswith(f"{where}.url") for p in problems):
            problems.append(f"{where}.url: required (or url_file / url_env)")
        elif url and not url.startswith(("http://", "https://")):
            problems.append(f"{where}.url: must start with http:// or https:// (value hidden)")
    return problems


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Loaded:
    """Load and validate config.yaml; ``ConfigError`` lists every problem, naming file and key."""
    env = os.environ if env is None else env
    data = _read_yaml(path, "config")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}: invalid configuration", problems=_problems(err)) from None
    problems = _secret_from_env(config, env, Path(path).parent)
    if problems:
        raise ConfigError(f"{path}: invalid configuration", problems=problems)
    warnings = [f"{path}: {w}" for w in _unknown_keys(config, "")]
    if config.loki.max_lookback < config.loki.lookback:
        warnings.append(f"{path}: loki.max_lookback is shorter than loki.lookback; using lookback")
        config.loki.max_lookback = config.loki.lookback
    return Loaded(config, str(path), warnings)


def build_rule(spec: RuleSpec) -> Rule:
    """A compiled rule; ``ValueError`` naming the field on a bad pattern, matcher or action."""
    regex = None
    if spec.match.pattern:
        try:
            regex = compile_pattern(spec.match.pattern)
        except PatternError as err:
            raise ValueError(
                f"match.pattern: invalid RE2 regex {cap(repr(err.pattern), 120)}: {cap(err.reason)}"
            ) from None
    labels = []
    for key, value in spec.match.labels.items():
        try:
            labels.append(LabelMatcher.build(key, str(value)))
        except PatternError as err:
            raise ValueError(
                f"match.labels.{cap(key, 60)}: invalid RE2 regex {cap(repr(err.pattern), 120)}: {cap(err.reason)}"
            ) from None
    allow = frozenset(n for n in spec.match.namespaces if not n.startswith("!"))
    deny = frozenset(n[1:] for n in spec.match.namespaces if n.startswith("!"))
    levels = _rule_levels(spec.match.levels)
    if spec.match.on not in RULE_ON:
        raise ValueError(f"match.on: {spec.match.on!r} is not one of {', '.join(RULE_ON)}")
    if not spec.match.pattern and not spec.match.keywords and not labels and not allow and not deny and not levels:
        raise ValueError("match: needs at least one of pattern, keywords, labels, namespaces, levels")
    try:
        params = validate_params(spec.remediation.action, spec.remediation.params)
    except ValueError as err:
        raise ValueError(f"remediation: {err}") from None
    if spec.remediation.cooldown < 0:
        raise ValueError("remediation.cooldown: must not be negative")
    return Rule(
        name=spec.name,
        priority=spec.priority,
        pattern=spec.match.pattern,
        keywords=tuple(k.lower() for k in spec.match.keywords if k),
        labels=tuple(labels),
        namespaces_allow=allow,
        namespaces_deny=deny,
        action=spec.remediation.action,
        params=params.model_dump(),
        cooldown=spec.remediation.cooldown,
        enabled=spec.enabled,
        description=spec.description,
        regex=regex,
        levels=levels,
        on=spec.match.on,
    )


_LEVEL_ALIASES = {"warn": "warning", "err": "error", "critical": "fatal", "crit": "fatal", "panic": "fatal"}


def _rule_levels(value: list[str] | str) -> frozenset[str]:
    """``match.levels``: a list of levels, or ``any`` (the rule ignores the level)."""
    items = [value] if isinstance(value, str) else list(value)
    out = set()
    for item in items:
        name = _LEVEL_ALIASES.get(str(item).strip().lower(), str(item).strip().lower())
        if name == "any":
            return frozenset()
        if name not in RULE_LEVELS:
            raise ValueError(f"match.levels: unknown level {item!r}; use any or {', '.join(RULE_LEVELS)}")
        out.add(name)
    return frozenset(out)


def parse_rules(data: Any, *, source: str) -> LoadedRules:
    """Validate rules already parsed from YAML (or sent by the API); all problems at once."""
    if data is None:
        data = {"rules": []}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'rules' list")
    try:
        top = RulesFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: invalid rules", problems=_problems(err)) from None
    if len(top.rules) > MAX_RULES:
        raise ConfigError(f"{source}: rules: {len(top.rules)} rules, at most {MAX_RULES} are supported")
    warnings = [f"{source}: {k}: unknown key, ignored" for k in top.model_extra or {}]
    problems: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(top.rules):
        label = f"rules[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label = f"rules[{i}] ({raw['name']})"
        if not isinstance(raw, dict):
            problems.append(f"{label}: must be a mapping, got {type(raw).__name__}")
            continue
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as err:
            problems.extend(_problems(err, f"{label}."))
            continue
        if spec.name in seen:
            problems.append(f"{label}.name: duplicate rule name {spec.name!r} (first at rules[{seen[spec.name]}])")
            continue
        seen[spec.name] = i
        if spec.name == "default":
            problems.append(f"{label}.name: 'default' is reserved for lines no rule matches")
            continue
        warnings.extend(f"{source}: {label}.{w}" for w in _unknown_keys(spec, ""))
        try:
            rules.append(build_rule(spec))
        except ValueError as err:
            problems.append(f"{label}.{err}")
    if problems:
        raise ConfigError(f"{source}: invalid rules", problems=problems)
    try:
        ruleset = RuleSet(rules, source=source)
    except RuleLimitError as err:
        raise ConfigError(f"{source}: rules: {err}") from None
    return LoadedRules(ruleset, source, warnings)


def load_rules(path: str | Path) -> LoadedRules:
    return parse_rules(_read_yaml(path, "rules"), source=str(path))


def resolve_rules_path(config_path: str | Path, config: Config, override: str | None) -> Path:
    """``--rules`` wins; else ``rules_file`` (relative to the config file's folder)."""
    if override:
        return Path(override)
    p = Path(config.rules_file)
    return p if p.is_absolute() else Path(config_path).parent / p
