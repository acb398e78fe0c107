"""Fixtures for the web surface: a served app per test module, and signed-in API clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.web.server import WebServer, portal, start_web

PASSWORD = "a long enough passphrase"


def sign_in(server: WebServer, email: str, password: str = PASSWORD) -> httpx.Client:
    """An API client holding a Bearer token for `email` (whose password must be set)."""
    client = server.client()
    answer = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    client.tokens = answer.json()  # type: ignore[attr-defined]
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
