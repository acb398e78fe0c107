"""The JSON API's main flows, on a PostgreSQL portal and on the SQLite default."""

from __future__ import annotations

import json

from tests.web.conftest import sign_in


def submit(client, query="SELECT 1", target="pg-shop/shop", comments=None) -> dict:
    answer = client.post(
        "/api/v1/requests", json={"target": target, "query": query, "comments": comments}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["request"]


def test_submit_decide_and_read_a_request_with_its_timeline(served):
    dev = sign_in(served, served.people.developer.email)
    manager = sign_in(served, served.people.manager.email)
    created = submit(dev, "SELECT id FROM orders", comments="weekly check")
    assert created["status"] == "pending"
    assert created["timeline"][0] == {
        "what": "submitted",
        "who": served.people.developer.email,
        "at": created["created_at"],
        "detail": None,
    }
    kinds = [
        e.kind
        for e in served.recorder.lifecycle()
        if e.request.uuid.hex == created["id"].replace("-", "")
    ]
    assert kinds == ["submitted"]

    approved = manager.post(f"/api/v1/requests/{created['id']}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved"
    assert body["decided_by"] == served.people.manager.email
    assert [step["what"] for step in body["timeline"]] == ["submitted", "approved"]

    again = dev.get(f"/api/v1/requests/{created['id'][:8]}")
    assert again.json()["status"] == "approved"
    policy = again.json()["policy"]
    assert policy["approvals_required"] == 1 and policy["second_approval"] is None
    assert policy["risk_level"] in (None, "low", "medium", "high", "critical")


def test_writes_need_a_confirmation_to_be_approved(served):
    dev = sign_in(served, served.people.developer.email)
    manager = sign_in(served, served.people.manager.email)
    created = submit(dev, "UPDATE orders SET status = 'x' WHERE id = 1")
    waiting = manager.get("/api/v1/approvals").json()["requests"]
    [listed] = [r for r in waiting if r["id"] == created["id"]]
    assert listed["policy"]["approvals_required"] == 1
    refused = manager.post(f"/api/v1/requests/{created['id']}/approve", json={"confirm": False})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "confirm"
    assert "not a read (write)" in refused.json()["error"]["message"]
    ok = manager.post(f"/api/v1/requests/{created['id']}/approve", json={"confirm": True})
    assert ok.json()["status"] == "approved"


def test_reject_needs_a_reason_and_says_who_decided_first(served):
    dev = sign_in(served, served.people.developer.email)
    manager = sign_in(served, served.people.manager.email)
    admin = sign_in(served, served.people.admin.email)
    created = submit(dev)
    empty = manager.post(f"/api/v1/requests/{created['id']}/reject", json={"reason": "  "})
    assert empty.status_code == 422
    assert empty.json() == {
        "error": {
            "code": "invalid",
            "message": "give a reason for the rejection",
            "field": "reason",
        }
    }
    rejected = manager.post(f"/api/v1/requests/{created['id']}/reject", json={"reason": "no"})
    assert rejected.json()["rejection_reason"] == "no"
    late = admin.post(f"/api/v1/requests/{created['id']}/approve")
    assert late.status_code == 409
    assert late.json()["error"]["message"] == "Already rejected by Maya Manager"


def test_errors_use_core_sentences_with_the_field(served):
    dev = sign_in(served, served.people.developer.email)
    bad_target = dev.post("/api/v1/requests", json={"target": "nope/x", "query": "SELECT 1"})
    assert bad_target.status_code == 422
    assert bad_target.json()["error"] == {
        "code": "invalid",
        "message": "unknown target 'nope/x'; pick one from the list",
        "field": "target",
    }
    unparsable = dev.post("/api/v1/requests", json={"target": "pg-shop/shop", "query": "SELEC 1"})
    assert unparsable.json()["error"]["field"] == "query"
    missing = dev.post("/api/v1/requests", json={"query": "SELECT 1"})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "target"
    unknown = dev.get("/api/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def test_analyze_checks_without_storing(served):
    dev = sign_in(served, served.people.developer.email)
    before = dev.get("/api/v1/requests", params={"mine": True, "limit": 100}).json()["requests"]
    answer = dev.post(
        "/api/v1/requests/analyze",
        json={"target": "pg-shop/shop", "query": "DELETE FROM orders WHERE id = 3"},
    )
    assert answer.status_code == 200, answer.text
    analysis = answer.json()["analysis"]
    assert analysis["kind"] == "write" and analysis["tables"] == ["orders"]
    after = dev.get("/api/v1/requests", params={"mine": True, "limit": 100}).json()["requests"]
    assert len(after) == len(before)


def test_script_upload_and_its_limits(served):
    dev = sign_in(served, served.people.developer.email)
    files = {"script": ("fix.sql", b"SELECT 1;\nSELECT 2;\n", "application/sql")}
    answer = dev.post(
        "/api/v1/requests/script", data={"target": "pg-shop/shop", "comments": "two"}, files=files
    )
    assert answer.status_code == 201, answer.text
    request = answer.json()["request"]
    assert request["script_filename"] == "fix.sql"
    assert request["content"] == "SELECT 1;\nSELECT 2;\n"
    big = {"script": ("big.sql", b"-- x\n" * 220_000, "application/sql")}
    too_big = dev.post("/api/v1/requests/script", data={"target": "pg-shop/shop"}, files=big)
    assert too_big.status_code == 422
    assert too_big.json()["error"] == {
        "code": "invalid",
        "message": "the script is over 1 MB",
        "field": "script",
    }
    exe = {"script": ("run.exe", b"MZ", "application/octet-stream")}
    wrong = dev.post("/api/v1/requests/script", data={"target": "pg-shop/shop"}, files=exe)
    assert wrong.json()["error"]["message"] == "attach a .sql, .js or .txt file"


def test_listing_filters_searches_and_pages(served):
    dev = sign_in(served, served.people.other_manager.email)
    marker = "needle_" + served.url.rsplit(":", 1)[1]
    made = [
        submit(dev, f"SELECT {i} AS {marker}", target="pg-shop/shop_reporting") for i in range(5)
    ]
    submit(dev, "SELECT 'haystack'")
    seen, cursor = [], None
    while True:
        params = {"q": marker, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = dev.get("/api/v1/requests", params=params).json()
        seen += [r["id"] for r in page["requests"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [r["id"] for r in reversed(made)]
    oldest = dev.get("/api/v1/requests", params={"q": marker, "sort": "oldest", "limit": 1})
    assert oldest.json()["requests"][0]["id"] == made[0]["id"]
    by_status = dev.get(
        "/api/v1/requests", params={"status": "pending", "instance": "pg-shop", "q": "haystack"}
    ).json()["requests"]
    assert len(by_status) == 1
    none = dev.get("/api/v1/requests", params={"q": marker, "status": "completed"}).json()
    assert none["requests"] == []
    bad = dev.get("/api/v1/requests", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    wrong_status = dev.get("/api/v1/requests", params={"status": "lost"})
    assert wrong_status.json()["error"]["message"] == "unknown status 'lost'"


def test_clone_makes_a_new_pending_request_of_the_cloner(served):
    dev = sign_in(served, served.people.developer.email)
    manager = sign_in(served, served.people.manager.email)
    original = submit(dev, "SELECT 42")
    cloned = manager.post(f"/api/v1/requests/{original['id']}/clone")
    assert cloned.status_code == 201
    copy = cloned.json()["request"]
    assert copy["id"] != original["id"]
    assert copy["status"] == "pending"
    assert copy["requester"]["email"] == served.people.manager.email
    assert copy["content"] == "SELECT 42"


def test_result_downloads_for_those_who_may_see_it(served, tmp_path):
    dev = sign_in(served, served.people.developer.email)
    created = submit(dev, "SELECT 7")
    served.core.requests.approve(created["id"], served.people.manager.id)
    queue = served.core.queue
    record, lease = queue.claim(created["id"])
    result_file = tmp_path / f"{record.uuid}.csv"
    result_file.write_text("n\n7\n")
    summary = {"columns": ["n"], "preview": [[7]], "row_count": 1, "file_format": "csv"}
    try:
        queue.finish(record.id, result_json=json.dumps(summary), result_file=str(result_file))
    finally:
        lease.release()
    got = dev.get(f"/api/v1/requests/{created['id']}")
    assert got.json()["result"]["preview"] == [[7]]
    assert [s["what"] for s in got.json()["timeline"]] == [
        "submitted", "approved", "started", "completed"
    ]  # fmt: skip
    download = dev.get(f"/api/v1/requests/{created['id']}/result")
    assert download.status_code == 200
    assert download.text == "n\n7\n"
    assert "attachment" in download.headers["content-disposition"]
    other = sign_in(served, served.people.other_manager.email)
    refused = other.get(f"/api/v1/requests/{created['id']}/result")
    assert refused.status_code == 403


def test_catalogue_and_me(served):
    dev = sign_in(served, served.people.developer.email)
    catalogue = dev.get("/api/v1/catalogue").json()
    assert {i["id"] for i in catalogue["instances"]} == {"pg-shop", "mongo-events"}
    assert "host" not in catalogue["instances"][0]
    me = dev.get("/api/v1/auth/me").json()
    assert me["email"] == served.people.developer.email and me["role"] == "developer"


def test_admin_manages_users_and_reads_stats(served):
    admin = sign_in(served, served.people.admin.email)
    tag = served.url.rsplit(":", 1)[1]
    added = admin.post(
        "/api/v1/admin/users",
        json={
            "email": f"new{tag}@example.com",
            "name": "New One",
            "role": "developer",
            "pod": "payments",
        },
    )
    assert added.status_code == 201, added.text
    changed = admin.patch(
        f"/api/v1/admin/users/new{tag}@example.com",
        json={"role": "manager", "pod": "platform", "slack_id": f"U{tag}NEW"},
    )
    assert changed.json()["role"] == "manager" and changed.json()["pod"] == "platform"
    off = admin.patch(f"/api/v1/admin/users/new{tag}@example.com", json={"active": False})
    assert off.json()["active"] is False
    link = admin.post(f"/api/v1/admin/users/{served.people.developer.email}/set-password-link")
    assert link.status_code == 422
    assert "no linked Slack account" in link.json()["error"]["message"]
    submit(sign_in(served, served.people.developer.email))
    stats = admin.get("/api/v1/admin/stats").json()
    assert stats["totals"]["pending"] >= 1
    assert stats["busiest_requesters"][0]["requests"] >= 1
    assert len(stats["days"]) == 30


def test_openapi_docs_are_served(served):
    client = served.client()
    schema = client.get("/api/openapi.json").json()
    assert "/api/v1/requests" in schema["paths"]
    assert "/api/v1/auth/login" in schema["paths"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
