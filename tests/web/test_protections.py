"""CSRF, sign-in throttling, XSS, security headers and cookie flags."""

from __future__ import annotations

import pytest

from db.models import LoginThrottle
from tests.web.conftest import PASSWORD, browser_session, set_passwords, sign_in
from tests.web.server import portal, start_web

HOSTILE_QUERY = "SELECT '<script>alert(1)</script>' AS x"
HOSTILE_COMMENT = '<img src=x onerror="alert(2)">'


def test_unsafe_methods_need_the_csrf_token(served_pg):
    browser = browser_session(served_pg, served_pg.people.developer.email)
    token = browser.cookies["dbq_csrf"]
    form = {"target": "pg-shop/shop", "submission_type": "query", "query": "SELECT 1"}
    missing = browser.post("/requests/new", data=form)
    assert missing.status_code == 403
    assert "came from another site" in missing.text
    wrong = browser.post("/requests/new", data={**form, "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    ok = browser.post("/requests/new", data={**form, "csrf_token": token})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/requests/")

    api = {"target": "pg-shop/shop", "query": "SELECT 1"}
    no_header = browser.post("/api/v1/requests", json=api)
    assert no_header.status_code == 403
    assert no_header.json()["error"]["code"] == "csrf"
    with_header = browser.post("/api/v1/requests", json=api, headers={"X-CSRF-Token": token})
    assert with_header.status_code == 201
    signout = browser.post("/signout")
    assert signout.status_code == 403


def test_the_sign_in_form_itself_needs_the_csrf_token(served_pg):
    client = served_pg.client()
    answer = client.post(
        "/signin/password",
        data={"email": served_pg.people.developer.email, "password": PASSWORD},
    )
    assert answer.status_code == 403
    assert "dbq_access" not in answer.cookies


def test_security_headers_and_cookie_flags(served_pg):
    browser = browser_session(served_pg, served_pg.people.developer.email)
    for path in ("/requests", "/api/v1/auth/me", "/signin"):
        headers = browser.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
    client = served_pg.client()
    client.get("/signin")
    answer = client.post(
        "/signin/password",
        data={
            "email": served_pg.people.developer.email,
            "password": PASSWORD,
            "csrf_token": client.cookies["dbq_csrf"],
        },
        follow_redirects=False,
    )
    cookies = {c.split("=")[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    for name in ("dbq_access", "dbq_refresh"):
        assert "httponly" in cookies[name] and "samesite=lax" in cookies[name]
        assert "secure" not in cookies[name]  # the public URL is a local http one
    assert "access_token" not in answer.text


def test_cookies_are_secure_behind_a_public_https_url(make_pg_database, tmp_path):
    server = start_web(
        portal("sqlite", make_pg_database, tmp_path),
        settings={"DBQUERY_PUBLIC_URL": "https://dbquery.example.com"},
    )
    try:
        server.web.auth.set_password(server.people.developer.email, PASSWORD)
        client = server.client()
        client.get("/signin")
        answer = client.post(
            "/signin/password",
            data={
                "email": server.people.developer.email,
                "password": PASSWORD,
                "csrf_token": client.cookies["dbq_csrf"],
            },
            follow_redirects=False,
        )
        for header in answer.headers.get_list("set-cookie"):
            assert "secure" in header.lower(), header
    finally:
        server.stop()


def test_failed_sign_ins_are_throttled_per_email_then_per_address(make_pg_database, tmp_path):
    server = start_web(portal("sqlite", make_pg_database, tmp_path))
    try:
        set_passwords(server)
        client = server.client()
        email = server.people.manager.email
        wrong = {"email": email, "password": "not the password at all"}
        answers = [client.post("/api/v1/auth/login", json=wrong) for _ in range(5)]
        assert [a.status_code for a in answers[:4]] == [401] * 4
        assert answers[0].json()["error"]["message"] == "email or password is wrong"
        locked = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert locked.status_code == 429
        assert locked.json()["error"]["message"].startswith("too many failed sign-ins; wait")
        assert int(locked.headers["retry-after"]) >= 1
        with server.core.sessions() as session:
            row = session.get(LoginThrottle, f"email:{email}")
            assert row.failures == 5 and row.locked_until is not None
        # Other people are not locked out by someone guessing this email...
        other = server.people.developer.email
        ok = client.post("/api/v1/auth/login", json={"email": other, "password": PASSWORD})
        assert ok.status_code == 200
        # ...until this address has failed too often, whatever emails it tries.
        for i in range(15):
            client.post(
                "/api/v1/auth/login", json={"email": f"guess{i}@example.com", "password": "x"}
            )
        blocked = client.post("/api/v1/auth/login", json={"email": other, "password": PASSWORD})
        assert blocked.status_code == 429
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hostile(served_pg):
    dev = sign_in(served_pg, served_pg.people.developer.email)
    answer = dev.post(
        "/api/v1/requests",
        json={"target": "pg-shop/shop", "query": HOSTILE_QUERY, "comments": HOSTILE_COMMENT},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["request"]["id"]


@pytest.mark.parametrize(
    "who, path",
    [
        ("developer", "/requests"),
        ("developer", "/requests/{id}"),
        ("manager", "/approvals"),
        ("manager", "/history"),
        ("admin", "/history?q=script"),
    ],
)
def test_hostile_text_renders_as_text(served_pg, hostile, who, path):
    browser = browser_session(served_pg, getattr(served_pg.people, who).email)
    page = browser.get(path.format(id=hostile))
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "<img" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_csv_export_neutralises_formulas(served_pg):
    dev = sign_in(served_pg, served_pg.people.developer.email)
    dev.post(
        "/api/v1/requests",
        json={"target": "pg-shop/shop", "query": "SELECT 1", "comments": '=HYPERLINK("x")'},
    )
    browser = browser_session(served_pg, served_pg.people.manager.email)
    export = browser.get("/history.csv", params={"q": "SELECT 1"})
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "'=HYPERLINK" in export.text
    assert ",=HYPERLINK" not in export.text
