"""The whole token lifecycle on the seed's tables, over HTTP, on a PostgreSQL portal."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select

from core.auth import AuthService, resolve_jwt_secret
from core.errors import ConfigError
from core.settings import Settings
from db.models import AccessTokenBlacklist, RefreshToken, SignInLink, UserTokenInvalidation, utcnow
from tests.conftest import wait_until
from tests.web.conftest import PASSWORD, sign_in
from tests.web.server import JWT_SECRET, start_web

ME = "/api/v1/auth/me"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def me(served, token: str):
    return served.client().get(ME, headers={"Authorization": f"Bearer {token}"})


def rows(served, model, *where):
    with served.core.sessions() as session:
        return session.scalars(select(model).where(*where)).all()


def login(served, email: str) -> dict:
    answer = served.client().post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer.json()


def refresh(served, token: str):
    return served.client().post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_access_token_claims_and_refresh_token_stored_only_as_a_hash(served_pg):
    tokens = login(served_pg, served_pg.people.developer.email)
    claims = jwt.decode(tokens["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert set(claims) == {"sub", "role", "iat", "exp", "jti"}
    assert claims["sub"] == str(served_pg.people.developer.id)
    assert claims["role"] == "developer"
    assert claims["exp"] - int(claims["iat"]) == 15 * 60
    stored = rows(
        served_pg, RefreshToken, RefreshToken.token_hash == sha256(tokens["refresh_token"])
    )
    assert len(stored) == 1
    assert stored[0].expires_at - stored[0].created_at == timedelta(days=7)
    assert not rows(served_pg, RefreshToken, RefreshToken.token_hash == tokens["refresh_token"])


def test_an_expired_access_token_is_refused(served_pg):
    past = AuthService(
        served_pg.core.sessions,
        JWT_SECRET.encode(),
        served_pg.core.events,
        served_pg.url,
        clock=lambda: utcnow() - timedelta(minutes=16),
    )
    tokens = past.issue(served_pg.people.developer)
    answer = me(served_pg, tokens.access)
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "your session has expired; sign in again"


def test_refresh_rotates_and_reuse_of_a_revoked_token_ends_every_session(served_pg):
    person = served_pg.people.other_manager
    first = login(served_pg, person.email)
    second = refresh(served_pg, first["refresh_token"])
    assert second.status_code == 200
    renewed = second.json()
    assert renewed["refresh_token"] != first["refresh_token"]
    old = rows(served_pg, RefreshToken, RefreshToken.token_hash == sha256(first["refresh_token"]))
    assert old[0].revoked_at is not None
    assert me(served_pg, renewed["access_token"]).status_code == 200

    stolen = refresh(served_pg, first["refresh_token"])
    assert stolen.status_code == 401
    assert "renewed elsewhere" in stolen.json()["error"]["message"]
    assert rows(served_pg, UserTokenInvalidation, UserTokenInvalidation.user_id == person.id)
    assert refresh(served_pg, renewed["refresh_token"]).status_code == 401
    assert me(served_pg, renewed["access_token"]).status_code == 401
    live = [
        r
        for r in rows(served_pg, RefreshToken, RefreshToken.user_id == person.id)
        if not r.revoked_at
    ]
    assert live == []
    assert me(served_pg, login(served_pg, person.email)["access_token"]).status_code == 200


def test_logout_blacklists_the_access_token_and_revokes_the_refresh_token(served_pg):
    tokens = login(served_pg, served_pg.people.developer.email)
    client = served_pg.client(headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (
        client.post(
            "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        ).status_code
        == 200
    )
    listed = rows(
        served_pg,
        AccessTokenBlacklist,
        AccessTokenBlacklist.token_hash == sha256(tokens["access_token"]),
    )
    claims = jwt.decode(tokens["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert int(listed[0].expires_at.timestamp()) == claims["exp"]
    refused = me(served_pg, tokens["access_token"])
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "you signed out; sign in again"
    assert refresh(served_pg, tokens["refresh_token"]).status_code == 401


def test_sign_out_everywhere_refuses_every_earlier_token_at_once(served_pg):
    email = served_pg.people.manager.email
    laptop, phone = login(served_pg, email), login(served_pg, email)
    client = served_pg.client(headers={"Authorization": f"Bearer {laptop['access_token']}"})
    assert client.post("/api/v1/auth/logout-all").status_code == 200
    for tokens in (laptop, phone):
        assert me(served_pg, tokens["access_token"]).status_code == 401
        assert refresh(served_pg, tokens["refresh_token"]).status_code == 401
    assert me(served_pg, login(served_pg, email)["access_token"]).status_code == 200


def test_password_and_role_changes_end_sessions(served_pg):
    admin = sign_in(served_pg, served_pg.people.admin.email)
    person = served_pg.people.other_manager
    tokens = login(served_pg, person.email)
    served_pg.web.auth.set_password(person.email, PASSWORD)
    assert me(served_pg, tokens["access_token"]).status_code == 401
    tokens = login(served_pg, person.email)
    changed = admin.patch(f"/api/v1/admin/users/{person.email}", json={"role": "developer"})
    assert changed.status_code == 200
    assert me(served_pg, tokens["access_token"]).status_code == 401
    admin.patch(f"/api/v1/admin/users/{person.email}", json={"role": "manager"})


def test_a_deactivated_users_live_token_is_refused(served_pg):
    admin = sign_in(served_pg, served_pg.people.admin.email)
    tag = served_pg.url.rsplit(":", 1)[1]
    email = f"leaver{tag}@example.com"
    served_pg.core.users.add(email=email, name="Leaver", role="developer", pod="payments")
    served_pg.web.auth.set_password(email, PASSWORD)
    tokens = login(served_pg, email)
    assert me(served_pg, tokens["access_token"]).status_code == 200
    admin.patch(f"/api/v1/admin/users/{email}", json={"active": False})
    refused = me(served_pg, tokens["access_token"])
    assert refused.status_code == 401
    assert refresh(served_pg, tokens["refresh_token"]).status_code == 401


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda c: jwt.encode({**c, "role": "admin"}, "x" * 40, "HS256"), id="wrong-secret"
        ),
        pytest.param(lambda c: jwt.encode(c, None, algorithm="none"), id="alg-none"),
        pytest.param(
            lambda c: jwt.encode({k: v for k, v in c.items() if k != "jti"}, JWT_SECRET, "HS256"),
            id="no-jti",
        ),
        pytest.param(lambda c: jwt.encode(c, JWT_SECRET * 2, "HS512"), id="other-alg"),
    ],
)
def test_forged_tokens_are_refused(served_pg, forge):
    tokens = login(served_pg, served_pg.people.developer.email)
    claims = jwt.decode(tokens["access_token"], JWT_SECRET, algorithms=["HS256"])
    answer = me(served_pg, forge(claims))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_a_tampered_payload_breaks_the_signature(served_pg):
    tokens = login(served_pg, served_pg.people.developer.email)
    header, payload, signature = tokens["access_token"].split(".")
    claims = jwt.decode(tokens["access_token"], JWT_SECRET, algorithms=["HS256"])
    forged = jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**claims, "role": "admin"}).encode()
    ).decode()
    assert me(served_pg, f"{header}.{forged}.{signature}").status_code == 401
    assert me(served_pg, tokens["access_token"][:-2] + "xx").status_code == 401


def test_sign_in_link_is_single_use_and_stored_hashed(served_pg):
    person = served_pg.people.manager
    served_pg.core.users.link_slack(person.email, "UMAYA0001")
    client = served_pg.client()
    sent = client.post("/api/v1/auth/sign-in-link", json={"email": person.email})
    assert sent.status_code == 202
    unknown = client.post("/api/v1/auth/sign-in-link", json={"email": "nobody@example.com"})
    assert unknown.json() == sent.json()
    link = served_pg.recorder.link_for(person.email)
    token = link.split("token=")[1]
    assert link.startswith(served_pg.url + "/auth/link?token=")
    stored = rows(served_pg, SignInLink, SignInLink.token_hash == sha256(token))
    assert stored and stored[0].expires_at - stored[0].created_at == timedelta(minutes=10)
    redeemed = client.post("/api/v1/auth/sign-in-link/redeem", json={"token": token})
    assert redeemed.status_code == 200
    assert me(served_pg, redeemed.json()["access_token"]).json()["email"] == person.email
    again = client.post("/api/v1/auth/sign-in-link/redeem", json={"token": token})
    assert again.status_code == 401
    assert "works once" in again.json()["error"]["message"]


def test_a_logout_on_another_replica_takes_effect_within_the_cache_bound(served_pg):
    other = start_web(served_pg.core.settings.database_url, people=served_pg.people)
    try:
        tokens = login(served_pg, served_pg.people.developer.email)
        assert me(served_pg, tokens["access_token"]).status_code == 200  # cached here now
        client = other.client(headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert client.post("/api/v1/auth/logout").status_code == 200
        wait_until(
            lambda: me(served_pg, tokens["access_token"]).status_code == 401,
            timeout=3,
            what="the other replica to refuse the signed-out token",
        )
    finally:
        other.stop()


def test_my_sessions_can_be_listed_and_revoked(served_pg):
    person = served_pg.people.admin
    first, second = login(served_pg, person.email), login(served_pg, person.email)
    client = served_pg.client(headers={"Authorization": f"Bearer {second['access_token']}"})
    sessions = client.get("/api/v1/auth/sessions").json()["sessions"]
    assert len(sessions) >= 2
    target = rows(
        served_pg, RefreshToken, RefreshToken.token_hash == sha256(first["refresh_token"])
    )[0]
    assert client.delete(f"/api/v1/auth/sessions/{target.id}").status_code == 200
    assert client.delete(f"/api/v1/auth/sessions/{target.id}").status_code == 422
    listed = client.get("/api/v1/auth/sessions").json()["sessions"]
    assert str(target.id) not in {s["id"] for s in listed}
    # The ended session's refresh token is now a revoked one: presenting it is taken as theft.
    assert refresh(served_pg, first["refresh_token"]).status_code == 401
    assert me(served_pg, second["access_token"]).status_code == 401


def test_jwt_secret_rules(tmp_path):
    sqlite = Settings(DBQUERY_DATABASE_URL=f"sqlite:///{tmp_path}/portal.sqlite3")
    secret = resolve_jwt_secret(sqlite)
    path = tmp_path / "portal.sqlite3.jwt-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(secret) >= 32 and resolve_jwt_secret(sqlite) == secret
    with pytest.raises(ConfigError, match="set DBQUERY_JWT_SECRET"):
        resolve_jwt_secret(Settings(DBQUERY_DATABASE_URL="postgresql://x@localhost/portal"))
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        resolve_jwt_secret(
            Settings(DBQUERY_DATABASE_URL="postgresql://x@h/p", DBQUERY_JWT_SECRET="short")
        )


def test_password_hashes_use_owasp_parameters_and_older_ones_are_remade_at_sign_in(served_pg):
    from argon2 import PasswordHasher

    from db.models import User

    person = served_pg.people.other_manager
    served_pg.web.auth.set_password(person.email, PASSWORD)
    [user] = rows(served_pg, User, User.email == person.email)
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # A hash made with the library's heavier default (64 MiB, 4 lanes) still signs in ...
    older = PasswordHasher().hash(PASSWORD)
    with served_pg.core.sessions.begin() as session:
        session.get(User, user.id).password_hash = older
    bad = served_pg.client().post(
        "/api/v1/auth/login", json={"email": person.email, "password": PASSWORD + "x"}
    )
    assert bad.status_code == 401
    [user] = rows(served_pg, User, User.email == person.email)
    assert user.password_hash == older  # a wrong password changes nothing
    login(served_pg, person.email)
    # ... and is replaced by one with the current parameters, for the same password.
    [user] = rows(served_pg, User, User.email == person.email)
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(user.password_hash, PASSWORD)
