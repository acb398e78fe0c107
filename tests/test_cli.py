"""The `dbquery` command end to end, as a subprocess, on a throwaway PostgreSQL database and on
the embedded SQLite default. Each run costs about a second, so the story is told once per backend
and most bad-input cases call the same entry point in-process.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.cli import main
from core.catalogue import load_catalogue
from db.migrate import head_revision
from db.session import make_engine
from tests.conftest import PG_URL, VENV_BIN, free_port, pg_url_for
from tests.portal import (
    dispose,
    migrated_engine,
    portal_services,
    schema_snapshot,
    submit_query,
)

DBQUERY = str(VENV_BIN / "dbquery")
RUN_TIMEOUT_S = 60
_pg = make_url(PG_URL)
PG_HOST, PG_PORT = _pg.host or "127.0.0.1", _pg.port or 5432


def catalogue_yaml(closed_port: int) -> str:
    """One instance that listens (the test PostgreSQL server) and one that does not."""
    return textwrap.dedent(
        f"""\
        pods:
          - id: payments
            name: Payments
        instances:
          - id: pg-local
            name: Local PostgreSQL
            type: postgresql
            host: {PG_HOST}
            port: {PG_PORT}
            databases: [shop]
          - id: mongo-down
            name: Nothing Here
            type: mongodb
            host: 127.0.0.1
            port: {closed_port}
            databases: [events]
        """
    )


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # shown when an assertion fails
        return f"dbquery {' '.join(self.args)} -> {self.returncode}\n{self.stdout}{self.stderr}"


class Cli:
    """Runs .venv/bin/dbquery in `cwd` with only the DBQUERY_/SLACK_ variables given here."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DBQUERY_", "SLACK_"))}
        self.env = base | env

    def start(self, args: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [DBQUERY, *args],
            cwd=self.cwd,
            env=self.env | (env or {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_many(self, runs: Sequence[tuple[Sequence[str], dict[str, str] | None]]) -> list[Result]:
        """Start every run at once (they are independent) and collect them in order."""
        procs = [(args, self.start(args, env)) for args, env in runs]
        results = []
        for args, proc in procs:
            out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
            results.append(Result(tuple(args), proc.returncode, out, err))
        return results

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.run_many([(args, env)])[0]

    def ok_many(self, *runs: Sequence[str]) -> list[str]:
        """Run independent commands side by side; each must succeed. Their outputs, in order."""
        results = self.run_many([(args, None) for args in runs])
        for result in results:
            assert result.returncode == 0, str(result)
            assert "Traceback" not in result.stderr, str(result)
        return [result.stdout for result in results]

    def ok(self, *args: str) -> str:
        return self.ok_many(args)[0]


@pytest.fixture(params=["postgresql", "sqlite"])
def story(request, make_pg_database, tmp_path) -> tuple[Cli, str]:
    """A CLI in an empty directory with a catalogue; (cli, portal URL for in-process checks).

    The SQLite run relies on the defaults: ./dbquery.yml and sqlite:///dbquery.sqlite3.
    """
    (tmp_path / "dbquery.yml").write_text(catalogue_yaml(free_port()), encoding="utf-8")
    if request.param == "postgresql":
        url = pg_url_for(make_pg_database(), "psycopg")
        env = {"DBQUERY_DATABASE_URL": url, "DBQUERY_CONFIG": str(tmp_path / "dbquery.yml")}
    else:
        url = f"sqlite:///{tmp_path / 'dbquery.sqlite3'}"
        env = {}
    return Cli(tmp_path, env), url


def test_cli_story(story):
    """Independent steps run side by side; the requests it shows are submitted in-process."""
    cli, url = story
    catalogue = load_catalogue(cli.cwd / "dbquery.yml")

    assert f"migrated from empty to {head_revision()}" in cli.ok("migrate")
    engine = make_engine(url)
    try:
        migrated = schema_snapshot(engine)
        assert f"already at {head_revision()}; nothing to do" in cli.ok("migrate")
        assert schema_snapshot(engine) == migrated
    finally:
        engine.dispose()

    requests, users = portal_services(url, catalogue)
    try:
        users.add(email="ada@example.com", name="Ada", role="admin", pod=None)
        added = cli.ok(
            "users", "add", "--email", "dana@example.com", "--name", "Dana Developer",
            "--role", "developer", "--pod", "payments",
        )  # fmt: skip
        assert "added dana@example.com (developer, pod payments)" in added
        linked, deactivated = cli.ok_many(
            ["users", "link-slack", "--email", "dana@example.com", "--slack-id", "U0DANA01"],
            ["users", "deactivate", "--email", "ADA@example.com"],
        )
        assert "linked dana@example.com to Slack user U0DANA01" in linked
        assert "deactivated ada@example.com" in deactivated
        dana = next(u for u in users.list() if u.email == "dana@example.com")
        assert (dana.slack_user_id, dana.is_active) == ("U0DANA01", True)
        request = submit_query(requests, dana, "SELECT 42", "pg-local/shop")
    finally:
        dispose(requests)

    user_list, request_list, shown, check = cli.run_many(
        [
            (["users", "list"], None),
            (["requests", "list", "--status", "pending"], None),
            (["requests", "show", request.short_id], None),
            (["check"], None),
        ]
    )

    assert user_list.returncode == 0, str(user_list)
    lines = user_list.stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "ROLE", "POD", "SLACK", "STATE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["dana@example.com"][-4:] == ["developer", "payments", "U0DANA01", "active"]
    assert rows["ada@example.com"][-4:] == ["admin", "-", "-", "inactive"]

    assert request_list.returncode == 0, str(request_list)
    assert str(request.uuid) in request_list.stdout
    assert "Local PostgreSQL / shop" in request_list.stdout

    assert shown.returncode == 0, str(shown)
    assert f"uuid              {request.uuid}" in shown.stdout
    assert "Payments (payments)" in shown.stdout and "SELECT 42" in shown.stdout

    assert check.returncode == 1, str(check)  # one instance is down
    assert "portal database: reachable, migrated" in check.stdout
    assert f"instance pg-local (postgresql, {PG_HOST}:{PG_PORT}): reachable" in check.stdout
    assert "  credentials: privileges not checked: " in check.stdout, check.stdout
    assert "instance mongo-down" in check.stdout and "UNREACHABLE" in check.stdout
    assert "slack: missing SLACK_BOT_TOKEN" in check.stdout
    assert not any("Traceback" in r.stderr for r in (user_list, request_list, shown, check))


def test_serve_without_slack_tokens_explains_what_to_set(tmp_path):
    result = Cli(tmp_path, {}).run("serve", "--port", "3999")

    assert result.returncode == 2, str(result)
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    assert "manifest.yml" in result.stderr
    assert "Traceback" not in result.stderr


def _assert_one_clear_line(result: Result, says: str) -> None:
    assert result.returncode == 2, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert len(result.stderr.splitlines()) == 1, str(result)
    assert result.stderr.startswith("dbquery: "), str(result)
    assert says in result.stderr, str(result)


def test_bad_input_through_the_real_command(tmp_path):
    """The installed command itself: a usage error, an unreachable database, a bad variable."""
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    cases: list[tuple[list[str], dict[str, str] | None, str]] = [
        ([], None, "required: COMMAND"),
        (["migrate"], {"DBQUERY_DATABASE_URL": unreachable}, "cannot use the portal database"),
        (["users", "list"], {"DBQUERY_WORKERS": "many"}, "DBQUERY_WORKERS"),
    ]
    results = Cli(tmp_path, {}).run_many([(args, env) for args, env, _ in cases])
    for (_, _, says), result in zip(cases, results, strict=True):
        _assert_one_clear_line(result, says)


# --- the same promise for every other bad input, checked in-process (no start-up cost) ----------


@pytest.fixture
def migrated_dir(tmp_path, monkeypatch) -> Path:
    """The working directory of an operator: ./dbquery.yml and a migrated SQLite portal."""
    (tmp_path / "dbquery.yml").write_text(catalogue_yaml(free_port()), encoding="utf-8")
    (tmp_path / "broken.yml").write_text("instances:\n  - id: x\n    port: no\n", "utf-8")
    (tmp_path / "empty").mkdir()
    migrated_engine(f"sqlite:///{tmp_path / 'dbquery.sqlite3'}").dispose()
    for name in [k for k in os.environ if k.startswith(("DBQUERY_", "SLACK_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


ADD = ["users", "add", "--name", "X", "--role", "developer", "--pod", "payments"]
BAD_INPUT: dict[str, tuple[list[str], dict[str, str], str]] = {
    "unknown command": (["frobnicate"], {}, "invalid choice: 'frobnicate'"),
    "missing option": (["users", "add", "--email", "x@example.com"], {}, "required"),
    "unknown role": ([*ADD, "--email", "x@example.com", "--role", "owner"], {}, "'owner'"),
    "bad email": ([*ADD, "--email", "not-an-email"], {}, "'not-an-email' is not an email"),
    "unknown pod": (
        [
            "users",
            "add",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--role",
            "manager",
            "--pod",
            "marketing",
        ],
        {},
        "unknown pod 'marketing'",
    ),  # fmt: skip
    "bad Slack id": (["users", "link-slack", "--email", "a@b.co", "--slack-id", "x"], {}, "'x'"),
    "unknown user": (["users", "deactivate", "--email", "nobody@example.com"], {}, "nobody@"),
    "unknown request": (["requests", "show", "0123abcd"], {}, "no request starts with"),
    "not a request id": (["requests", "show", "zz"], {}, "not a request id"),
    "unknown status": (["requests", "list", "--status", "paused"], {}, "'paused'"),
    "limit out of range": (["requests", "list", "--limit", "0"], {}, "--limit"),
    "port not a number": (["serve", "--port", "http"], {}, "'http'"),
    "unsupported database": (
        ["users", "list"],
        {"DBQUERY_DATABASE_URL": "mysql://db/portal"},
        "PostgreSQL or SQLite",
    ),
    "garbage database URL": (["migrate"], {"DBQUERY_DATABASE_URL": "::"}, "not a valid"),
    "unmigrated database": (
        ["users", "list"],
        {"DBQUERY_DATABASE_URL": "sqlite:///empty/new.sqlite3"},
        "run `dbquery migrate`",
    ),
    "broken catalogue": (["users", "list"], {"DBQUERY_CONFIG": "broken.yml"}, "broken.yml: "),
    "missing catalogue": (["check"], {"DBQUERY_CONFIG": "absent.yml"}, "absent.yml: "),
    "unknown log level": (["users", "list"], {"DBQUERY_LOG_LEVEL": "LOUD"}, "DBQUERY_LOG_LEVEL"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(migrated_dir, monkeypatch, capsys, case):
    args, env, says = BAD_INPUT[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    returncode = main(args)

    captured = capsys.readouterr()
    _assert_one_clear_line(Result(tuple(args), returncode, captured.out, captured.err), says)


def test_database_from_a_newer_dbquery_is_one_clear_line(migrated_dir, capsys):
    engine = make_engine(f"sqlite:///{migrated_dir / 'dbquery.sqlite3'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
    finally:
        engine.dispose()

    returncode = main(["migrate"])

    captured = capsys.readouterr()
    _assert_one_clear_line(Result(("migrate",), returncode, captured.out, captured.err), "0999")
