"""config.yaml: its schema, loading, validation and secrets (rules.yaml: :mod:`sentinel.config_rules`).

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
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Re-exported: callers load both files through this module.
from sentinel.config_rules import LoadedRules as LoadedRules
from sentinel.config_rules import build_rule as build_rule
from sentinel.config_rules import load_rules as load_rules
from sentinel.config_rules import parse_rules as parse_rules
from sentinel.config_yaml import MAX_FILE_BYTES as MAX_FILE_BYTES
from sentinel.config_yaml import Duration, problems_of, read_yaml, unknown_keys
from sentinel.core.model import Priority
from sentinel.core.settings_spec import BY_KEY
from sentinel.errors import ConfigError

ENV_PREFIX = "KUBE_SENTINEL_"


class Section(BaseModel):
    """A config section; ``TABLE`` names it in the settings table (:mod:`sentinel.core.settings_spec`),
    whose fields take their default, bounds and doc from there (see :func:`setting`)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)
    TABLE: ClassVar[str] = ""

    @field_validator("*")
    @classmethod
    def _table_bounds(cls, v: Any, info: ValidationInfo) -> Any:
        spec = BY_KEY.get(f"{cls.TABLE}.{info.field_name}") if cls.TABLE else None
        if spec is not None and spec.kind != "int" and (problem := spec.problem(v)) is not None:
            raise ValueError(problem)
        return v


def setting(key: str) -> Any:
    """The pydantic field of the setting ``key`` in the settings table: its default, doc and, for
    integers, its bounds (pydantic's own ge/le; other kinds are checked by ``Section._table_bounds``)."""
    spec = BY_KEY[key]
    if spec.kind == "int":
        return Field(default=spec.default, ge=spec.low, le=spec.high, description=spec.doc)
    if spec.kind == "namespaces":
        return Field(default_factory=lambda: list(spec.default), description=spec.doc)
    return Field(default=spec.default, description=spec.doc)


class LokiConfig(Section):
    TABLE: ClassVar[str] = "loki"
    url: str = "http://loki.monitoring:3100"
    query: str = setting("loki.query")
    poll_interval: Duration = setting("loki.poll_interval")
    lookback: Duration = setting("loki.lookback")
    max_lookback: Duration = setting("loki.max_lookback")
    ingest_delay: Duration = 10.0  # read up to this long ago: lines reach Loki after their timestamp
    tenant_id: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    password_file: str = ""
    bearer_token: SecretStr = SecretStr("")
    bearer_token_file: str = ""
    tls_verify: bool = True
    ca_file: str = ""
    timeout: Duration = setting("loki.timeout")
    page_limit: int = Field(default=1000, ge=1, le=5000)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if "@" in v.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError("must not carry credentials (user:password@); use loki.username and loki.password")
        return v.rstrip("/")


class PodStatusConfig(Section):
    """incidents: pod states read from the API server as a second source of occurrences."""

    enabled: bool = True
    interval: Duration = 30.0
    namespaces: list[str] = Field(default_factory=list)  # empty: every namespace (list pods cluster-wide)
    page_limit: int = Field(default=500, ge=1, le=5000)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if v < 1:
            raise ValueError("must be at least 1s")
        return v


class KubernetesConfig(Section):
    in_cluster: bool = True
    kubeconfig: str = ""
    context: str = ""
    # incidents: a group first seen within this long after its revision's rollout is "new since the rollout"
    rollout_window: Duration = 3600.0
    pod_status: PodStatusConfig = Field(default_factory=PodStatusConfig)

    @field_validator("rollout_window")
    @classmethod
    def _rollout_window(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v


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
    TABLE: ClassVar[str] = "remediation"
    enabled: bool = setting("remediation.enabled")
    dry_run: bool = setting("remediation.dry_run")
    max_actions_per_hour: int = setting("remediation.max_actions_per_hour")
    per_workload_per_hour: int = setting("remediation.per_workload_per_hour")
    excluded_namespaces: list[str] = setting("remediation.excluded_namespaces")
    breaker_threshold: int = setting("remediation.breaker_threshold")
    effectiveness_window: Duration = setting("remediation.effectiveness_window")


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


# -- loading ------------------------------------------------------------------------------------


# -- loading ------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A loaded file plus the warnings it produced (unknown keys, deprecated spellings)."""

    config: Config
    path: str
    warnings: list[str] = field(default_factory=list)


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
    data = read_yaml(path, "config")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}: invalid configuration", problems=problems_of(err)) from None
    problems = _secret_from_env(config, env, Path(path).parent)
    if problems:
        raise ConfigError(f"{path}: invalid configuration", problems=problems)
    warnings = [f"{path}: {w}" for w in unknown_keys(config, "")]
    if config.loki.max_lookback < config.loki.lookback:
        warnings.append(f"{path}: loki.max_lookback is shorter than loki.lookback; using lookback")
        config.loki.max_lookback = config.loki.lookback
    return Loaded(config, str(path), warnings)


def resolve_rules_path(config_path: str | Path, config: Config, override: str | None) -> Path:
    """``--rules`` wins; else ``rules_file`` (relative to the config file's folder)."""
    if override:
        return Path(override)
    p = Path(config.rules_file)
    return p if p.is_absolute() else Path(config_path).parent / p
