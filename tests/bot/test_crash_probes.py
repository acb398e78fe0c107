"""Text that used to kill `serve` at submit time, sent to a real `serve` through the modal.

Each probe must get an answer on the field the person filled in, within 5 seconds, and `serve`
must still be up afterwards. The parsers run in worker processes of `serve`; they are
children of it and go when it goes.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bot.conftest import SlackSender, query_form, script_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve
from tests.conftest import wait_until

ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")
ANSWER_WITHIN_S = 5

PG = "pg-shop/{db}"
MONGO = "mongo-events/events"
# The start of each answer: the sandbox's own where a parser meets its limits, else the bounded
# refusal the MongoDB parser gives itself.
TOO_COMPLEX = "too complex to check: "
TOO_LONG = "number too long"

SCRIPT_PROBES = [
    pytest.param(
        PG, "plus.sql", "SELECT " + "+".join(["1"] * 25_000), TOO_COMPLEX, id="sql-25000-terms"
    ),
    pytest.param(
        PG, "plus.sql", "SELECT " + "+".join(["1"] * 3_000), TOO_COMPLEX, id="sql-3000-terms"
    ),
    pytest.param(
        PG,
        "parens.sql",
        "SELECT " + "(" * 20_000 + "1" + ")" * 20_000,
        TOO_COMPLEX,
        id="sql-parens",
    ),
    pytest.param(
        MONGO,
        "nested.js",
        "db.c.find({a: " + "NumberInt(" * 10_000 + "1" + ")" * 10_000 + "})",
        TOO_COMPLEX,
        id="js-numberint-10000-deep",
    ),
    pytest.param(
        MONGO, "digits.js", "db.c.find({a: " + "9" * 5_000 + "})", TOO_LONG, id="js-5000-digits"
    ),
    pytest.param(
        MONGO,
        "decimal.js",
        "db.c.find({a: NumberDecimal('" + "9" * 100_000 + "')})",
        "expected a decimal number",
        id="js-decimal-100000",
    ),
]

# The query field holds at most 3,000 characters: the same shapes, as large as fits.
QUERY_PROBES = [
    pytest.param(PG, "SELECT " + "+".join(["1"] * 1_400), TOO_COMPLEX, id="sql-1400-terms"),
    pytest.param(PG, "SELECT " + "(" * 1_400 + "1" + ")" * 1_400, TOO_COMPLEX, id="sql-parens"),
    pytest.param(
        MONGO,
        "db.c.find({a: " + "NumberInt(" * 250 + "1" + ")" * 250 + "})",
        "values nest too deeply",
        id="js-numberint",
    ),
    pytest.param(MONGO, "db.c.find({a: " + "9" * 2_900 + "})", TOO_LONG, id="js-2900-digits"),
]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack, target_database: str
) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("probes")
    env = serve_env(
        workdir, f"sqlite:///{workdir / 'portal.sqlite3'}", target_database, fake_slack.api_url
    )
    prepare_portal(env, ANN, MO)
    server = start_serve(env, workdir / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the parent pid follows it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.add(int(entry.name))
    return found


def field_error(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors", body
    [(field, message)] = body["errors"].items()
    return field, message


def assert_still_serving(served: Served) -> None:
    assert served.proc.poll() is None
    assert httpx.get(served.url + "/healthz", timeout=5).status_code == 200


def target_of(template: str, target_database: str) -> str:
    return template.format(db=target_database)


@pytest.mark.parametrize(("target", "name", "content", "answer"), SCRIPT_PROBES)
def test_crash_script_gets_a_field_error_and_serve_stays_up(
    served: Served,
    fake_slack: FakeSlack,
    target_database: str,
    target: str,
    name: str,
    content: str,
    answer: str,
) -> None:
    sender = SlackSender(served.url, fake_slack)
    attached = fake_slack.add_file(name, content.encode())
    started = time.monotonic()
    response = sender.submit_view(
        "U0ANN", "submit_request", script_form(target_of(target, target_database), [attached])
    )
    assert time.monotonic() - started < ANSWER_WITHIN_S
    field, message = field_error(response)
    assert field == "script"
    assert message.startswith(answer)
    assert_still_serving(served)


@pytest.mark.parametrize(("target", "content", "answer"), QUERY_PROBES)
def test_crash_query_gets_a_field_error_and_serve_stays_up(
    served: Served,
    fake_slack: FakeSlack,
    target_database: str,
    target: str,
    content: str,
    answer: str,
) -> None:
    sender = SlackSender(served.url, fake_slack)
    started = time.monotonic()
    response = sender.submit_view(
        "U0ANN", "submit_request", query_form(target_of(target, target_database), content)
    )
    assert time.monotonic() - started < ANSWER_WITHIN_S
    field, message = field_error(response)
    assert field == "query"
    assert message.startswith(answer)
    assert_still_serving(served)


def test_after_the_probes_an_ordinary_request_still_goes_through(
    served: Served, fake_slack: FakeSlack, target_database: str
) -> None:
    sender = SlackSender(served.url, fake_slack)
    form = query_form(f"pg-shop/{target_database}", "SELECT count(*) FROM orders")
    assert sender.submit_view("U0ANN", "submit_request", form).text == ""
    [approval] = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0MO" and "count(*)" in json.dumps(c.args),
    )
    assert "read" in json.dumps(approval.args["blocks"]).lower()


def test_analysis_workers_end_with_serve(served: Served) -> None:
    workers = children_of(served.proc.pid)
    assert workers, "serve analyses submissions in worker processes"
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) in (0, -signal.SIGTERM)

    def all_gone() -> bool:
        return not any(_running(pid) for pid in workers)

    wait_until(all_gone, timeout=5, what="the analysis workers to exit")
    assert "Traceback" not in served.log.read_text()


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
