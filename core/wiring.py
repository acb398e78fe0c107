"""Builds the core services from settings: one place that creates engines and stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from core.approvals import ApprovalPolicies
from core.catalogue import Catalogue, load_catalogue
from core.deliveries import OutcomeDeliveries
from core.errors import ConfigError
from core.events import EventBus
from core.execution import ExecutionRunner
from core.queue import ExecutionQueue
from core.request_rows import RequestRows
from core.requests import RequestService
from core.secrets import SecretStore
from core.settings import Settings
from core.users import UserService
from db.errors import PortalDatabaseError
from db.migrate import current_revision, head_revision, known_revisions
from db.models import utcnow
from db.session import Sessions, make_engine, make_session_factory


@dataclass
class Core:
    settings: Settings
    catalogue: Catalogue
    engine: Engine
    sessions: Sessions
    requests: RequestService  # the lifecycle: submit, decide, read
    queue: ExecutionQueue  # claim, finish, recover executions
    deliveries: OutcomeDeliveries
    users: UserService
    secrets: SecretStore
    runner: ExecutionRunner
    events: EventBus


def build_core(
    settings: Settings,
    catalogue: Catalogue | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Core:
    catalogue = catalogue or load_catalogue(settings.config_path)
    try:
        engine = make_engine(settings.database_url)
    except PortalDatabaseError as exc:
        raise ConfigError(exc.message) from None
    revision, head = current_revision(engine), head_revision()
    if revision != head:
        if revision is not None and revision not in known_revisions():
            raise ConfigError(
                f"the portal database is at revision {revision}, newer than this dbquery knows "
                f"({head}); run the dbquery that migrated it"
            )
        raise ConfigError("the portal database is not migrated; run `dbquery migrate` first")
    sessions = make_session_factory(engine)
    secrets = SecretStore()
    events = EventBus()
    rows = RequestRows(sessions, clock, events)
    # Read through rows, so a clock set on the services later is the one policies use too.
    policies = ApprovalPolicies(catalogue, secrets, lambda: rows.clock())
    return Core(
        settings=settings,
        catalogue=catalogue,
        engine=engine,
        sessions=sessions,
        requests=RequestService(sessions, catalogue, rows=rows, policies=policies),
        queue=ExecutionQueue(rows, policies),
        deliveries=OutcomeDeliveries(rows),
        users=UserService(sessions, catalogue),
        secrets=secrets,
        runner=ExecutionRunner(
            catalogue,
            secrets,
            settings.results_dir,
            compress_over_mb=settings.compress_over_mb,
            upload_limit_mb=settings.upload_limit_mb,
        ),
        events=events,
    )
