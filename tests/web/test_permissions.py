"""Who may view, decide, download and administer: the same rules as Slack, over the API."""

from __future__ import annotations

import pytest

from tests.web.conftest import PASSWORD, sign_in

# role -> (view, decide, download, administer) for a request by the payments developer.
MATRIX = {
    "requester": (True, False, True, False),
    "peer": (False, False, False, False),  # another developer of the same pod
    "manager": (True, True, True, False),  # manager of the request's pod
    "other_manager": (False, False, False, False),  # manager of another pod
    "admin": (True, True, True, True),
}


@pytest.fixture(scope="module")
def clients(served_pg):
    people = served_pg.people
    tag = served_pg.url.rsplit(":", 1)[1]
    peer = served_pg.core.users.add(
        email=f"pete{tag}@example.com", name="Pete Peer", role="developer", pod="payments"
    )
    served_pg.web.auth.set_password(peer.email, PASSWORD)
    emails = {
        "requester": people.developer.email,
        "peer": peer.email,
        "manager": people.manager.email,
        "other_manager": people.other_manager.email,
        "admin": people.admin.email,
    }
    return {who: sign_in(served_pg, email) for who, email in emails.items()}


def new_request(clients) -> str:
    answer = clients["requester"].post(
        "/api/v1/requests", json={"target": "pg-shop/shop", "query": "SELECT 1"}
    )
    return answer.json()["request"]["id"]


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_permissions_matrix(clients, who):
    may_view, may_decide, may_download, may_administer = MATRIX[who]
    client = clients[who]
    request_id = new_request(clients)

    viewed = client.get(f"/api/v1/requests/{request_id}")
    assert viewed.status_code == (200 if may_view else 403), viewed.text
    if not may_view:
        assert "You can't see this request" in viewed.json()["error"]["message"]
    listed = client.get("/api/v1/requests", params={"limit": 100}).json()["requests"]
    assert (request_id in {r["id"] for r in listed}) == may_view

    downloaded = client.get(f"/api/v1/requests/{request_id}/result")
    # Allowed people learn there is no file yet; others learn nothing about it.
    assert downloaded.status_code == (404 if may_download else 403)

    decided = client.post(f"/api/v1/requests/{request_id}/reject", json={"reason": "matrix"})
    assert decided.status_code == (200 if may_decide else 403), decided.text
    if not may_decide:
        assert decided.json()["error"]["message"].startswith("You can't decide this request")

    administered = client.get("/api/v1/admin/users")
    assert administered.status_code == (200 if may_administer else 403)
    added = client.post(
        "/api/v1/admin/users",
        json={"email": f"x-{who}@example.com", "name": "X", "role": "admin"},
    )
    assert added.status_code == (201 if may_administer else 403)


def test_inactive_people_cannot_sign_in(served_pg):
    answer = served_pg.client().post(
        "/api/v1/auth/login",
        json={"email": served_pg.people.inactive_manager.email, "password": PASSWORD},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "email or password is wrong"


def test_nothing_but_sign_in_without_a_token(served_pg):
    client = served_pg.client()
    for path in ("/api/v1/requests", "/api/v1/catalogue", "/api/v1/admin/users", "/api/v1/auth/me"):
        answer = client.get(path)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
