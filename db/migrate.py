"""Apply the Alembic migrations shipped in db/migrations (idempotent).

Only `migrate` needs Alembic itself, and imports it when called. Checking where a portal
stands (what `serve` does at start-up) reads the migration files' revision ids and the
alembic_version table directly: Alembic would stay loaded in `serve` for nothing, about 10 MB.
"""

from __future__ import annotations

import ast
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SAWarning

from db.errors import PortalDatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock held while migrating ("dbquery" in ASCII).
MIGRATION_LOCK_KEY = 0x64627175657279


if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@cache
def revision_parents() -> dict[str, str | None]:
    """Each shipped revision and the one it revises, read from the migration files."""
    parents: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    values[target.id] = ast.literal_eval(node.value)
        parents[values["revision"]] = values.get("down_revision")
    return parents


def head_revision() -> str:
    parents = revision_parents()
    [head] = set(parents) - set(parents.values())
    return head


def known_revisions() -> set[str]:
    return set(revision_parents())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


_EXPRESSION_INDEX_WARNING = "Skipped unsupported reflection of expression-based index"


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to head; returns (revision before, revision after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

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
