"""The target catalogue: pods and database instances, loaded from YAML into pydantic models."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from core.policies import ADMINS_GROUP, Policies
from core.risk import RiskThresholds


class DatabaseType(StrEnum):
    POSTGRESQL = "postgresql"
    MONGODB = "mongodb"


DEFAULT_STATEMENT_TIMEOUT_S = 60
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_RESULT_BYTES = 512 * 1024 * 1024
# A request's whole run (every statement of a script, and writing its result) is bounded by
# total_timeout_s; unset, it is this or the statement timeout, whichever is longer.
DEFAULT_TOTAL_TIMEOUT_S = 300


class Pod(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=255)


class Instance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = Field(min_length=1, max_length=255)
    type: DatabaseType
    host: str = Field(min_length=1)
    port: int = Field(gt=0, lt=65536)
    databases: list[str] = Field(min_length=1)
    secret: str | None = None
    statement_timeout_s: int = Field(default=DEFAULT_STATEMENT_TIMEOUT_S, gt=0, le=86_400)
    max_rows: int = Field(default=DEFAULT_MAX_ROWS, gt=0, le=10_000_000)
    max_result_bytes: int = Field(default=DEFAULT_MAX_RESULT_BYTES, gt=0, le=2**40)
    total_timeout_s: int | None = Field(default=None, gt=0, le=86_400)
    # TLS to the target: true requires it, false refuses it; unset leaves the driver's default
    # (PostgreSQL: TLS when the server offers it; MongoDB: no TLS).
    tls: bool | None = None
    # MongoDB only: the database that holds the user (pymongo's default is "admin").
    auth_source: str | None = Field(default=None, min_length=1)
    # MongoDB only: accept $where, $function, $accumulator and mapReduce (with a warning and
    # never as a read) instead of refusing them.
    allow_server_js: bool = False
    # Approval policies and risk thresholds (core.policies, core.risk); pods may override some.
    policies: Policies = Field(default_factory=Policies)
    pod_policies: dict[str, Policies] = Field(default_factory=dict)
    risk: RiskThresholds = Field(default_factory=RiskThresholds)

    def policies_for(self, pod_id: str | None) -> Policies:
        return self.policies.overridden_by(self.pod_policies.get(pod_id or ""))

    @property
    def request_timeout_s(self) -> int:
        """How long a whole request may run: total_timeout_s, or its default."""
        if self.total_timeout_s is not None:
            return self.total_timeout_s
        return max(DEFAULT_TOTAL_TIMEOUT_S, self.statement_timeout_s)

    @field_validator("databases")
    @classmethod
    def _databases_are_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "/" in name:
                raise ValueError(f"database name {name!r} must be non-empty and contain no '/'")
        if len(set(value)) != len(value):
            raise ValueError("database names must be unique")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition(":")
        if not sep or scheme not in ("env", "aws") or not rest:
            raise ValueError("must be 'env:VARIABLE' or 'aws:<secret id>'")
        return value


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pods: list[Pod] = Field(default_factory=list)
    instances: list[Instance] = Field(default_factory=list)
    audit_channel: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        for kind, items in (("pods", self.pods), ("instances", self.instances)):
            first_at: dict[str, int] = {}
            for index, item in enumerate(items):
                if item.id in first_at:
                    raise ValueError(
                        f"{kind}[{index}].id (id {item.id!r}): duplicate id, "
                        f"already used by {kind}[{first_at[item.id]}]"
                    )
                first_at[item.id] = index
        return self

    @model_validator(mode="after")
    def _policies_name_known_pods(self) -> Catalogue:
        pods = {pod.id for pod in self.pods}
        for index, instance in enumerate(self.instances):
            where = f"instances[{index}] (id {instance.id!r})"
            for pod_id in instance.pod_policies:
                if pod_id not in pods:
                    raise ValueError(
                        f"{where}.pod_policies: {pod_id!r} is not a pod of the catalogue"
                    )
            for policies in (instance.policies, *instance.pod_policies.values()):
                for group in policies.groups() - pods - {ADMINS_GROUP}:
                    raise ValueError(
                        f"{where}.policies.second_approval: group {group!r} must be 'admins'"
                        " or a pod id"
                    )
        return self

    def pod(self, pod_id: str) -> Pod | None:
        return next((p for p in self.pods if p.id == pod_id), None)

    def instance(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if i.id == instance_id), None)

    def targets(self) -> list[tuple[Instance, str]]:
        """Every (instance, database) pair a user may pick, in catalogue order."""
        return [(inst, db) for inst in self.instances for db in inst.databases]


def _location(loc: tuple) -> str:
    """Turn pydantic's ('instances', 1, 'port') into 'instances[1].port'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _entry_name(raw: object, loc: tuple) -> str:
    """Name the entry an error is in by its id when it has one ('instances[1] (pg-shop)')."""
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw, dict):
        items = raw.get(loc[0])
        if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
            entry_id = items[loc[1]].get("id")
            if entry_id:
                return f" (id {entry_id!r})"
    return ""


def parse_catalogue(raw: object, source: str) -> Catalogue:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the catalogue must be a mapping with 'pods' and 'instances'")
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        # Whole-catalogue checks (duplicate ids) have no location; their message names the entry.
        where = f"{_location(loc)}{_entry_name(raw, loc)}: " if loc else ""
        message = first["msg"].removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}: {where}{message}{suffix}") from None


def load_catalogue(path: str | Path) -> Catalogue:
    """Load and validate the catalogue; every failure names the file, the entry and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: catalogue file not found (set DBQUERY_CONFIG or create it; see README)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the catalogue: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_catalogue(raw, str(path))
