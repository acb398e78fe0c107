"""Apply the Alembic migrations shipped in db/migrations (idempotent)."""

from __future__ import annotations

import warnings
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import SAWarning

from db.errors import PortalDatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock held while migrating ("dbquery" in ASCII).
MIGRATION_LOCK_KEY = 0x64627175657279


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    return {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_EXPRESSION_INDEX_WARNING = "Skipped unsupported reflection of expression-based index"


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head; returns (revision before, revision after)."""
    cfg = alembic_config()
    known = known_revisions()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several `serve` replicas may migrate at start-up at once: one migrates, the others
            # wait here and then find nothing to do. (SQLite's BEGIN IMMEDIATE serialises already.)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and before not in known:
            # Alembic would fail with a stack trace; this happens after rolling back a deployment.
            raise PortalDatabaseError(
                f"the portal database is at revision {before}, which this dbquery does not know: "
                "a newer dbquery migrated it; run that version instead"
            )
        cfg.attributes["connection"] = conn
        with warnings.catch_warnings():
            # SQLite batch steps reflect the database, and SQLAlchemy cannot reflect the
            # lower(email) index of `users`; no batch step after the one that creates that
            # index copies `users`, so the warning would only alarm whoever migrates.
            warnings.filterwarnings("ignore", message=_EXPRESSION_INDEX_WARNING, category=SAWarning)
            command.upgrade(cfg, "head")
    return before, head_revision()
