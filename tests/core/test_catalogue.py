"""The catalogue YAML: a good file loads with defaults; a bad one names file, entry and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.catalogue import (
    DEFAULT_MAX_ROWS,
    DEFAULT_STATEMENT_TIMEOUT_S,
    DatabaseType,
    load_catalogue,
)
from core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "dbquery.example.yml"

GOOD = """
pods:
  - id: payments
    name: Payments
instances:
  - id: pg-shop
    name: Shop PostgreSQL
    type: postgresql
    host: 127.0.0.1
    port: 5432
    databases: [shop, shop_reporting]
    secret: aws:prod/pg-shop
    statement_timeout_s: 5
    max_rows: 10
  - id: mongo-events
    name: Events MongoDB
    type: mongodb
    host: mongo.internal
    port: 27017
    databases: [events]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dbquery.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_good_catalogue_loads_with_defaults(tmp_path):
    catalogue = load_catalogue(write(tmp_path, GOOD))

    assert [(p.id, p.name) for p in catalogue.pods] == [("payments", "Payments")]
    shop = catalogue.instance("pg-shop")
    assert (shop.type, shop.secret) == (DatabaseType.POSTGRESQL, "aws:prod/pg-shop")
    assert (shop.statement_timeout_s, shop.max_rows) == (5, 10)
    events = catalogue.instance("mongo-events")
    assert events.secret is None
    assert (events.statement_timeout_s, events.max_rows) == (
        DEFAULT_STATEMENT_TIMEOUT_S,
        DEFAULT_MAX_ROWS,
    )
    assert [(i.id, db) for i, db in catalogue.targets()] == [
        ("pg-shop", "shop"),
        ("pg-shop", "shop_reporting"),
        ("mongo-events", "events"),
    ]
    assert catalogue.instance("nope") is None and catalogue.pod("nope") is None


def test_the_shipped_example_loads():
    catalogue = load_catalogue(EXAMPLE)
    assert {i.type for i in catalogue.instances} == {DatabaseType.POSTGRESQL, DatabaseType.MONGODB}
    assert catalogue.pods


def _replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


# case -> (file text, fragments the message must contain)
BAD = {
    "missing field": (
        _replace("    host: mongo.internal\n", ""),
        ["instances[1].host", "'mongo-events'", "Field required"],
    ),
    "wrong type": (
        _replace("port: 5432", "port: fivefourthreetwo"),
        ["instances[0].port", "'pg-shop'", "integer"],
    ),
    "port out of range": (
        _replace("port: 27017", "port: 70000"),
        ["instances[1].port", "'mongo-events'"],
    ),
    "unknown database type": (
        _replace("type: mongodb", "type: oracle"),
        ["instances[1].type", "'mongo-events'", "postgresql", "mongodb"],
    ),
    "no databases": (
        _replace("databases: [events]", "databases: []"),
        ["instances[1].databases", "'mongo-events'"],
    ),
    "database name with a slash": (
        _replace("databases: [events]", "databases: [ev/ents]"),
        ["instances[1].databases", "'mongo-events'", "ev/ents"],
    ),
    "bad secret reference": (
        _replace("secret: aws:prod/pg-shop", "secret: vault:prod/pg-shop"),
        ["instances[0].secret", "'pg-shop'", "env:VARIABLE"],
    ),
    "misspelt key": (
        _replace("    host: mongo.internal\n", "    hostname: mongo.internal\n"),
        ["instances[1]", "'mongo-events'"],
    ),
    "non-positive timeout": (
        _replace("statement_timeout_s: 5", "statement_timeout_s: 0"),
        ["instances[0].statement_timeout_s", "'pg-shop'"],
    ),
    "pod without name": (
        _replace("    name: Payments\n", ""),
        ["pods[0].name", "'payments'", "Field required"],
    ),
    "entry without id": (
        _replace("  - id: mongo-events\n    name", "  - name"),
        ["instances[1].id", "Field required"],
    ),
    "duplicate instance id": (
        _replace("id: mongo-events", "id: pg-shop"),
        ["instances[1].id", "'pg-shop'", "duplicate"],
    ),
    "duplicate pod id": (
        _replace("pods:\n", "pods:\n  - id: payments\n    name: Again\n"),
        ["pods[1].id", "'payments'", "duplicate"],
    ),
    "instances not a list": (
        "instances: pg-shop\n",
        ["instances", "list"],
    ),
    "not a mapping": ("- pods\n- instances\n", ["must be a mapping"]),
    "bad YAML": (
        _replace("    port: 5432\n", "    port: [5432\n"),
        ["invalid YAML", "line"],
    ),
    "tab indentation": ("pods:\n\t- id: payments\n", ["invalid YAML", "line 2"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_catalogue_names_the_file_the_entry_and_the_field(tmp_path, case):
    text, fragments = BAD[case]
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_catalogue(path)

    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message
    assert "Traceback" not in message


def test_missing_file_says_how_to_point_at_one(tmp_path):
    path = tmp_path / "absent.yml"
    with pytest.raises(ConfigError, match="DBQUERY_CONFIG") as raised:
        load_catalogue(path)
    assert str(path) in str(raised.value)


def test_secret_values_are_never_in_the_catalogue_errors(tmp_path):
    """Only references live in the catalogue; an error echoes the reference, not a password."""
    path = write(tmp_path, _replace("secret: aws:prod/pg-shop", "secret: hunter2-password"))
    with pytest.raises(ConfigError) as raised:
        load_catalogue(path)
    assert "instances[0].secret" in str(raised.value)
    assert "hunter2" not in str(raised.value)
