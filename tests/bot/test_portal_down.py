"""The portal database goes away while `serve` runs: everyone who asks is told, privately, that
dbquery cannot reach its database and nothing was stored; once it is back, all works again.

`serve` reaches PostgreSQL through a loopback TCP proxy the test cuts (closing its listener
and every open connection) and restores.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.bot.conftest import SlackSender, query_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env, start_serve
from tests.conftest import free_port, pg_url_for, wait_until

ANN = ("ann@example.com", "developer", "U0ANN")
MO = ("mo@example.com", "manager", "U0MO")
PAT = ("pat@example.com", "manager", "U0PAT")
DOWN = "can't reach its database"


class TcpProxy:
    """Forwards a loopback port to PostgreSQL until cut; restoring listens on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break the open ones, as a database host that went away."""
        assert self._listener is not None
        _close(self._listener)
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65_536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory,
    fake_slack: FakeSlack,
    target_database: str,
    make_pg_database: Callable[[], str],
) -> Iterator[tuple[Served, TcpProxy, str]]:
    portal_db = make_pg_database()
    proxy = TcpProxy(("127.0.0.1", 5432))
    workdir = tmp_path_factory.mktemp("portal-down")
    portal_url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{portal_db}"
    env = serve_env(workdir, portal_url, target_database, fake_slack.api_url)
    prepare_portal(env, ANN, MO, PAT)
    served = start_serve(env, workdir / "serve.log")
    try:
        yield served, proxy, portal_db
    finally:
        served.stop()
        proxy.cut()


def stored(portal_db: str) -> list[tuple[str, str]]:
    """(uuid, status) of every request, read directly (not through the proxy)."""
    with psycopg.connect(pg_url_for(portal_db)) as conn:
        rows = conn.execute("SELECT uuid, status FROM query_requests ORDER BY created_at")
        return [(str(uuid), status) for uuid, status in rows]


def answered_at(fake: FakeSlack, response_url: str | None) -> list[dict[str, Any]]:
    path = (response_url or "").split("127.0.0.1", 1)[-1].split("/", 1)[-1]
    return [c.args for c in fake.calls_to("response_url") if c.path.endswith(path)]


def test_with_the_portal_database_gone_everyone_is_told_and_nothing_is_lost(
    proxied: tuple[Served, TcpProxy, str], fake_slack: FakeSlack, target_database: str
):
    served, proxy, portal_db = proxied
    sender = SlackSender(served.url, fake_slack)
    target = f"pg-shop/{target_database}"
    # Ann submits while all is well (she is now remembered by `serve` for a while).
    form = query_form(target, "SELECT customer FROM orders ORDER BY id")
    assert sender.submit_view("U0ANN", "submit_request", form).text == ""
    [(pending, status)] = stored(portal_db)
    assert status == "pending"
    fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "DU0PAT" and pending in json.dumps(c.args),
    )
    assert httpx.get(served.url + "/healthz").status_code == 200
    # Pat clicks a stale button, so `serve` remembers Pat too.
    response, click_url = sender.click("U0PAT", "approve_request", str(uuid.uuid4()))
    wait_until(lambda: answered_at(fake_slack, click_url), what="the stale click's answer")

    proxy.cut()
    assert httpx.get(served.url + "/healthz", timeout=30).status_code == 503

    # A slash command from someone not seen before: the answer is in the HTTP response.
    response, _ = sender.command("U0MO", "list")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    assert DOWN in json.dumps(response.json())

    # From someone remembered: acknowledged, then told through the command's response_url.
    response, response_url = sender.command("U0ANN", "list")
    assert response.status_code == 200
    [told] = wait_until(lambda: answered_at(fake_slack, response_url), what="the answer")
    assert DOWN in json.dumps(told) and told["response_type"] == "ephemeral"

    # A modal submission: an error on the form, and nothing stored.
    response = sender.submit_view("U0ANN", "submit_request", query_form(target, "SELECT 2"))
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert DOWN in json.dumps(answer["errors"])

    # An Approve click (by someone remembered, so it reaches the decision itself):
    # acknowledged, then told privately that nothing was recorded.
    response, click_url = sender.click("U0PAT", "approve_request", pending)
    assert response.status_code == 200
    [told] = wait_until(lambda: answered_at(fake_slack, click_url), what="the click's answer")
    assert DOWN in json.dumps(told)

    # The database comes back: nothing was half-done meanwhile, and everything works again.
    proxy.restore()
    wait_until(lambda: httpx.get(served.url + "/healthz").status_code == 200, timeout=30)
    assert stored(portal_db) == [(pending, "pending")]
    response, click_url = sender.click("U0PAT", "approve_request", pending)
    assert response.status_code == 200
    fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("thread_ts") is not None and "globex" in json.dumps(c.args),
        timeout=30,
    )
    assert stored(portal_db) == [(pending, "completed")]
    response = sender.submit_view("U0ANN", "submit_request", query_form(target, "SELECT 2"))
    assert response.text == ""
    assert [status for _, status in stored(portal_db)] == ["completed", "pending"]
    response, response_url = sender.command("U0MO", "list")
    assert response.status_code == 200
    assert DOWN not in response.text

    log = served.log.read_text()
    assert "Traceback" not in log
    assert "the portal database did not answer" in log
