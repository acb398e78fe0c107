"""`dbquery serve` as deployed: a subprocess configured only through its environment."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.bot.conftest import BOT_TOKEN, SIGNING_SECRET, TARGET_SECRET_ENV, write_catalogue
from tests.conftest import VENV_BIN, free_port, wait_for_port


def dbquery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "dbquery"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def serve_env(workdir: Path, portal_url: str, target_db: str, slack_api_url: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DBQUERY_"))},
        "DBQUERY_DATABASE_URL": portal_url,
        "DBQUERY_CONFIG": str(write_catalogue(workdir / "dbquery.yml", target_db)),
        "DBQUERY_RESULTS_DIR": str(workdir / "results"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_api_url,
        TARGET_SECRET_ENV: '{"username": "postgres", "password": ""}',
    }


def add_users(env: dict[str, str], *people: tuple[str, str, str]) -> None:
    """(email, role, slack id) each, in pod payments."""
    for email, role, slack_id in people:
        added = dbquery(
            env, "users", "add", "--email", email, "--name", email.split("@")[0],
            "--role", role, "--pod", "payments", "--slack-id", slack_id,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr


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
