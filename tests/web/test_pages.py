"""The pages' own rules over HTTP: set a password by link, silent renewal, page permissions,
decisions with confirmation and reason, clone, CSV export and safe redirects."""

from __future__ import annotations

import csv
import io

from tests.web.conftest import PASSWORD, browser_session, sign_in


def form(client, **fields) -> dict:
    return {"csrf_token": client.cookies["dbq_csrf"], **fields}


def test_an_admin_sends_a_set_password_link_and_it_works_once(served_pg):
    person = served_pg.people.other_manager
    served_pg.core.users.link_slack(person.email, "UOTTO0001")
    admin = browser_session(served_pg, served_pg.people.admin.email)
    sent = admin.post(f"/users/{person.email}/set-password-link", data=form(admin))
    assert sent.status_code == 303 and sent.headers["location"] == "/users?notice=link-sent"
    link = served_pg.recorder.link_for(person.email)
    assert "/auth/set-password?token=" in link
    path = link.removeprefix(served_pg.url)
    visitor = served_pg.client(follow_redirects=False)
    assert visitor.get(path).status_code == 200
    token = path.split("token=")[1]
    weak = visitor.post(
        "/auth/set-password",
        data=form(visitor, token=token, password="password1234", repeat="password1234"),
    )
    assert weak.status_code == 422
    assert "common passwords" in weak.text
    new = "a brand new long passphrase"
    done = visitor.post(
        "/auth/set-password", data=form(visitor, token=token, password=new, repeat=new)
    )
    assert done.status_code == 303 and done.headers["location"] == "/signin?done=password"
    again = visitor.post(
        "/auth/set-password", data=form(visitor, token=token, password=new, repeat=new)
    )
    assert again.status_code == 401
    browser_session(served_pg, person.email, new)
    served_pg.web.auth.set_password(person.email, PASSWORD)


def test_opening_a_sign_in_link_does_not_use_it_up(served_pg):
    person = served_pg.people.developer
    served_pg.core.users.link_slack(person.email, "UDANA0002")
    visitor = served_pg.client(follow_redirects=False)
    visitor.get("/signin")
    visitor.post("/signin/link", data=form(visitor, email=person.email))
    path = served_pg.recorder.link_for(person.email).removeprefix(served_pg.url)
    assert visitor.get(path).status_code == 200  # a link preview
    assert visitor.get(path).status_code == 200
    token = path.split("token=")[1]
    signed_in = visitor.post("/auth/link", data=form(visitor, token=token))
    assert signed_in.status_code == 303
    assert visitor.get("/requests").status_code == 200


def test_an_expired_access_cookie_is_renewed_silently_with_rotation(served_pg):
    browser = browser_session(served_pg, served_pg.people.developer.email)
    old_refresh = browser.cookies["dbq_refresh"]
    browser.cookies.delete("dbq_access")
    page = browser.get("/requests")
    assert page.status_code == 200
    assert browser.cookies["dbq_refresh"] != old_refresh
    assert "dbq_access" in browser.cookies
    signed_out = served_pg.client(follow_redirects=False)
    signed_out.cookies.set("dbq_refresh", old_refresh)
    answer = signed_out.get("/requests")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"


def test_pages_refuse_who_may_not_see_them(served_pg):
    developer = browser_session(served_pg, served_pg.people.developer.email)
    assert developer.get("/users").status_code == 403
    history = developer.get("/history")
    assert history.status_code == 403
    assert "History is for managers and admins" in history.text
    assert developer.get("/dashboard").status_code == 200
    anonymous = served_pg.client(follow_redirects=False)
    for path in ("/requests", "/approvals", "/users", "/requests/new"):
        assert anonymous.get(path).headers["location"] == "/signin"


def test_approving_a_write_on_the_page_needs_the_confirmation(served_pg):
    dev = sign_in(served_pg, served_pg.people.developer.email)
    created = dev.post(
        "/api/v1/requests", json={"target": "pg-shop/shop", "query": "DELETE FROM orders"}
    ).json()["request"]
    manager = browser_session(served_pg, served_pg.people.manager.email)
    page = manager.get(f"/requests/{created['id']}")
    assert 'name="confirm"' in page.text
    refused = manager.post(f"/requests/{created['id']}/approve", data=form(manager))
    assert refused.status_code == 422
    assert "confirm that it may run against production" in refused.text
    approved = manager.post(f"/requests/{created['id']}/approve", data=form(manager, confirm="1"))
    assert approved.status_code == 303
    assert dev.get(f"/api/v1/requests/{created['id']}").json()["status"] == "approved"


def test_rejecting_on_the_page_records_the_reason_and_clone_copies(served_pg):
    dev = browser_session(served_pg, served_pg.people.developer.email)
    made = dev.post(
        "/requests/new",
        data=form(dev, target="pg-shop/shop", submission_type="query", query="SELECT 5"),
    )
    request_path = made.headers["location"]
    manager = browser_session(served_pg, served_pg.people.manager.email)
    waiting = manager.get("/approvals").text
    assert "SELECT 5" in waiting and 'id="policy"' in waiting and "Risk" in waiting
    rejected = manager.post(f"{request_path}/reject", data=form(manager, reason="use the replica"))
    assert rejected.status_code == 303
    page = dev.get(request_path)
    assert "use the replica" in page.text and "badge-rejected" in page.text
    cloned = dev.post(f"{request_path}/clone", data=form(dev))
    assert cloned.status_code == 303 and cloned.headers["location"] != request_path
    assert "badge-pending" in dev.get(cloned.headers["location"]).text


def test_check_shows_the_analysis_and_stores_nothing(served_pg):
    dev = browser_session(served_pg, served_pg.people.developer.email)
    before = len(served_pg.core.requests.recent(user_id=served_pg.people.developer.id, limit=500))
    checked = dev.post(
        "/requests/new",
        data=form(dev, target="pg-shop/shop", submission_type="query",
                  query="UPDATE orders SET x = 1", check="1"),
    )  # fmt: skip
    assert checked.status_code == 200
    assert 'class="analysis kind-write"' in checked.text
    assert "UPDATE orders SET x = 1" in checked.text  # the editor keeps the text
    bad = dev.post(
        "/requests/new",
        data=form(dev, target="pg-shop/shop", submission_type="query", query="SELEC", check="1"),
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    after = len(served_pg.core.requests.recent(user_id=served_pg.people.developer.id, limit=500))
    assert after == before


def test_history_csv_export_follows_the_filters(served_pg):
    dev = sign_in(served_pg, served_pg.people.developer.email)
    marker = "csvmarker" + served_pg.url.rsplit(":", 1)[1]
    for i in range(3):
        dev.post(
            "/api/v1/requests", json={"target": "pg-shop/shop", "query": f"SELECT {i} -- {marker}"}
        )
    manager = browser_session(served_pg, served_pg.people.manager.email)
    export = manager.get("/history.csv", params={"q": marker})
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0][:3] == ["id", "status", "created_at"]
    assert len(rows) == 4
    assert all(marker in row[12] for row in rows[1:])
    other = browser_session(served_pg, served_pg.people.other_manager.email)
    assert (
        len(list(csv.reader(io.StringIO(other.get("/history.csv", params={"q": marker}).text))))
        == 1
    )


def test_sign_in_never_redirects_off_site(served_pg):
    client = served_pg.client(follow_redirects=False)
    client.get("/signin")
    for target in ("//evil.example.com/x", "https://evil.example.com", "/\\evil.example.com"):
        answer = client.post(
            "/signin/password",
            data=form(client, email=served_pg.people.admin.email, password=PASSWORD, next=target),
        )
        assert answer.headers["location"] == "/requests"
        client.cookies.clear()
        client.get("/signin")


def test_the_policy_part_shows_risk_steps_and_schedule():
    import uuid as uuid_mod
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from fastapi.templating import Jinja2Templates

    from core.approvals import PolicyState, StepRecord
    from web.pages.render import when
    from web.surface import HERE

    env = Jinja2Templates(directory=str(HERE / "templates")).env
    env.filters["when"] = when
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    state = PolicyState(
        risk_level="high",
        risk_reasons=("schema change", "<script>alert(1)</script>"),
        estimate_summary="full scan of `orders` (1.2M rows)",
        approvals_required=2,
        second_approval_policy="schema-changes",
        second_approval_group="platform",
        run_after=None,
        not_before=None,
        expires_at=at,
        rerun_of=None,
        steps=(StepRecord(1, uuid_mod.uuid4(), "maya@example.com", at, None),),
    )
    html = env.get_template("_policy.html").render(state=state, r=SimpleNamespace(status="pending"))
    text = " ".join(html.split())
    assert "Risk: high" in text and "full scan of `orders` (1.2M rows)" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "Step 1 of 2</strong> approved by maya@example.com" in text
    assert "step 2 of 2</strong> needs an admin or a manager of pod platform" in text
    assert "Rejected automatically" in text
    unknown = env.get_template("_policy.html").render(
        state=PolicyState(None, (), None, 1, None, None, None, None, None, None, ()),
        r=SimpleNamespace(status="pending"),
    )
    assert "not known yet" in unknown and "Step 1" not in unknown
    assert env.get_template("_policy.html").render(state=None, r=None).strip() == ""
