"""Fixtures for the web surface: a served app per test module, and signed-in API clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.web.server import WebServer, portal, start_web

PASSWORD = "a long enough passphrase"


def sign_in(server: WebServer, email: str) -> httpx.Client:
    """An API client holding a Bearer token for `email`, issued as a sign-in issues it.

    Signing in itself (password, link) has its own tests; the others skip its deliberate
    slowness (argon2id).
    """
    client = server.client()
    [person] = [u for u in server.core.users.list() if u.email == email]
    tokens = server.web.auth.issue(person)
    client.headers["Authorization"] = f"Bearer {tokens.access}"
    return client


def set_passwords(server: WebServer) -> None:
    for person in vars(server.people).values():
        server.web.auth.set_password(person.email, PASSWORD)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def served(request, make_pg_database, tmp_path_factory) -> Iterator[WebServer]:
    url = portal(request.param, make_pg_database, tmp_path_factory.mktemp("web"))
    server = start_web(url)
    set_passwords(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served_pg(make_pg_database, tmp_path_factory) -> Iterator[WebServer]:
    url = portal("postgresql", make_pg_database, tmp_path_factory.mktemp("web"))
    server = start_web(url)
    set_passwords(server)
    try:
        yield server
    finally:
        server.stop()


def browser_session(server: WebServer, email: str, password: str = PASSWORD) -> httpx.Client:
    """A cookie-holding client signed in through the sign-in form, as a browser would be."""
    client = server.client(follow_redirects=False)
    client.get("/signin")
    answer = client.post(
        "/signin/password",
        data={"email": email, "password": password, "csrf_token": client.cookies["dbq_csrf"]},
    )
    assert answer.status_code == 303, answer.text
    return client
