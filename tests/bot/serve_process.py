"""`dbquery serve` as deployed: a subprocess configured only through its environment."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.catalogue import load_catalogue
from core.users import UserService
from db.migrate import migrate
from db.session import make_engine, make_session_factory
from tests.bot.conftest import BOT_TOKEN, SIGNING_SECRET, TARGET_SECRET_ENV, write_catalogue
from tests.conftest import VENV_BIN, free_port, wait_for_port

Person = tuple[str, str, str]  # email, role, Slack id; everyone is in pod payments


def dbquery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "dbquery"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def serve_env(
    workdir: Path,
    portal_url: str,
    target_db: str,
    slack_api_url: str,
    *,
    signing_secret: str | None = SIGNING_SECRET,
    **extra: str,
) -> dict[str, str]:
    """The environment `serve` reads; `signing_secret=None` leaves it out (Socket Mode)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DBQUERY_"))},
        "DBQUERY_DATABASE_URL": portal_url,
        "DBQUERY_CONFIG": str(write_catalogue(workdir / "dbquery.yml", target_db)),
        "DBQUERY_RESULTS_DIR": str(workdir / "results"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": slack_api_url,
        TARGET_SECRET_ENV: '{"username": "postgres", "password": ""}',
        # Signs web sessions; `serve` requires it with a PostgreSQL portal.
        "DBQUERY_JWT_SECRET": "serve-test-jwt-secret-" + "x" * 32,
        **extra,
    }
    if signing_secret is not None:
        env["SLACK_SIGNING_SECRET"] = signing_secret
    return env


def add_users(env: dict[str, str], *people: Person) -> None:
    """Through the installed command, as an operator would."""
    for email, role, slack_id in people:
        added = dbquery(
            env, "users", "add", "--email", email, "--name", email.split("@")[0],
            "--role", role, "--pod", "payments", "--slack-id", slack_id,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr


def prepare_portal(env: dict[str, str], *people: Person) -> None:
    """Migrate and add people in this process: quicker than the command, which has its own tests,
    for tests about `serve` alone."""
    engine = make_engine(env["DBQUERY_DATABASE_URL"])
    try:
        migrate(engine)
        users = UserService(make_session_factory(engine), load_catalogue(env["DBQUERY_CONFIG"]))
        for email, role, slack_id in people:
            users.add(
                email=email, name=email.split("@")[0], role=role, pod="payments", slack_id=slack_id
            )
    finally:
        engine.dispose()


@dataclass
class Served:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_serve(env: dict[str, str], log_path: Path) -> Served:
    port = free_port()
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dbquery"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, "dbquery serve")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Served(f"http://127.0.0.1:{port}", env, proc, log_path)
