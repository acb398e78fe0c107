"""The web story in a real headless Chromium, against a served app and a running worker.

Sign in with the one-time link (read from the private notice core publishes, which Slack
turns into a DM), submit with a Check first, approve in a second session, watch the result
arrive on the page and download it; password sign-in and sign out everywhere. Each page is
saved to docs/screenshots/.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from core.catalogue import Catalogue, Instance, Pod
from core.jobs import Worker
from db.models import QueryRequest, utcnow
from tests.conftest import PG_URL, pg_url_for, wait_until
from tests.web.browser import PHONE, chromium, screenshot, wait_for, wait_text
from tests.web.conftest import PASSWORD, set_passwords
from tests.web.server import WebServer, portal, start_web

SECRET_ENV = "DBQUERY_TEST_WEB_TARGET"


@pytest.fixture(scope="module")
def story(make_pg_database, tmp_path_factory) -> Iterator[WebServer]:
    target = make_pg_database()
    with psycopg.connect(pg_url_for(target), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer, status text, total numeric)")
        conn.execute(
            "INSERT INTO orders SELECT i, (ARRAY['paid','shipped','refunded'])[1 + i % 3], i * 9.5"
            " FROM generate_series(1, 40) AS i"
        )
    server_info = conninfo_to_dict(PG_URL)
    mp = pytest.MonkeyPatch()
    mp.setenv(
        SECRET_ENV,
        # With one database listed, the secret's dbname is the real one and "shop" a label.
        json.dumps(
            {"username": server_info.get("user", "postgres"), "password": "", "dbname": target}
        ),
    )
    catalogue = Catalogue(
        pods=[Pod(id="payments", name="Payments"), Pod(id="platform", name="Platform")],
        instances=[
            Instance(
                id="pg-shop",
                name="Shop PostgreSQL",
                type="postgresql",
                host=server_info.get("host", "127.0.0.1"),
                port=int(server_info.get("port", 5432)),
                databases=["shop"],
                secret=f"env:{SECRET_ENV}",
            )
        ],
    )
    tmp = tmp_path_factory.mktemp("story")
    server = start_web(
        portal("postgresql", make_pg_database, tmp), catalogue=catalogue, results_dir=tmp / "res"
    )
    set_passwords(server)
    server.core.users.link_slack(server.people.developer.email, "UDANA0001")
    seed_history(server, "shop")
    worker = Worker(server.core, NoOutcomeMessages())
    worker.subscribe(server.core.events)
    worker.start()
    try:
        yield server
    finally:
        worker.shutdown(wait=True)
        server.stop()
        mp.undo()


class NoOutcomeMessages:
    """The outcome reaches the web page from the portal row; no other surface here posts it."""

    def deliver_outcome(self, request, result_file) -> None:
        pass


def seed_history(server: WebServer, target: str, count: int = 90) -> None:
    """A month of decided and executed requests, so the history and dashboard have a story."""
    pick = random.Random(12)
    people = [server.people.developer, server.people.manager, server.people.other_manager]
    now = utcnow()
    with server.core.sessions.begin() as session:
        for i in range(count):
            who = pick.choice(people)
            created = now - timedelta(days=pick.uniform(0.5, 29), minutes=i)
            status = pick.choices(["completed", "failed", "rejected"], [8, 1, 1])[0]
            decided = created + timedelta(minutes=pick.uniform(2, 90))
            started = decided + timedelta(seconds=pick.uniform(1, 3))
            session.add(
                QueryRequest(
                    user_id=who.id,
                    database_type="postgresql",
                    instance_id="pg-shop",
                    instance_name=pick.choice(["Shop PostgreSQL", "Billing replica", "Events"]),
                    database_name=target,
                    submission_type="query",
                    query_content=f"SELECT * FROM orders WHERE id = {i}",
                    pod_id=who.pod_id,
                    pod_name=who.pod_id.title(),
                    status=status,
                    approver_id=server.people.admin.id,
                    approver_email=server.people.admin.email,
                    approved_at=decided if status != "rejected" else None,
                    rejected_at=decided if status == "rejected" else None,
                    rejection_reason="not now" if status == "rejected" else None,
                    execution_started_at=started if status != "rejected" else None,
                    execution_completed_at=started + timedelta(seconds=pick.expovariate(0.5))
                    if status != "rejected"
                    else None,
                    execution_error="relation does not exist" if status == "failed" else None,
                    created_at=created,
                    updated_at=created,
                )
            )


def sign_in_with_password(driver, server: WebServer, email: str) -> None:
    driver.delete_all_cookies()
    driver.get(server.url + "/signin")
    driver.find_element(By.CSS_SELECTOR, "details summary").click()
    driver.find_element(By.ID, "pw-email").send_keys(email)
    driver.find_element(By.ID, "pw-password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#password-form button").click()
    wait_for(driver, "header nav")


def test_the_web_story_in_a_browser(story, tmp_path):
    people = story.people
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chromium(downloads) as driver:
        # Sign in through the one-time link sent privately (in Slack) to the developer.
        driver.get(story.url + "/signin")
        screenshot(driver, "signin")
        driver.find_element(By.ID, "link-email").send_keys(people.developer.email)
        driver.find_element(By.CSS_SELECTOR, "#link-form button").click()
        wait_text(driver, ".notice", "sign-in link is on its way")
        driver.get(story.recorder.link_for(people.developer.email))
        driver.find_element(By.ID, "continue").click()
        wait_text(driver, "h1", "My requests")
        assert people.developer.name in driver.find_element(By.CSS_SELECTOR, ".who").text

        # A request: check it first, then submit.
        driver.get(story.url + "/requests/new")
        Select(driver.find_element(By.ID, "target")).select_by_value("pg-shop/shop")
        query = "SELECT id, status, total FROM orders WHERE total > 100 ORDER BY id"
        driver.find_element(By.ID, "query").send_keys(query)
        driver.find_element(By.ID, "comments").send_keys("Refund audit for finance")
        driver.find_element(By.ID, "check").click()
        wait_text(driver, "#analysis", "Read")
        assert "orders" in driver.find_element(By.ID, "analysis").text
        screenshot(driver, "new-request")
        driver.find_element(By.ID, "submit").click()
        wait_for(driver, ".badge-pending")
        request_url = driver.current_url
        request_id = request_url.rsplit("/", 1)[1]
        assert driver.find_element(By.ID, "live").is_displayed()
        screenshot(driver, "request-pending")
        developer_cookies = driver.get_cookies()

        # The manager approves in another session, signed in with a password.
        sign_in_with_password(driver, story, people.manager.email)
        driver.get(story.url + "/approvals")
        wait_for(driver, f"#approval-{request_id[:8]}")
        screenshot(driver, "approvals")
        driver.get(request_url)
        driver.find_element(By.ID, "approve").click()
        wait_text(driver, ".timeline", "Approved by " + people.manager.email)

        # Back as the developer: the page follows the request until its result arrives.
        driver.delete_all_cookies()
        for cookie in developer_cookies:
            driver.add_cookie(cookie)
        driver.get(request_url)
        wait_for(driver, ".badge-completed", timeout=30)
        rows = driver.find_elements(By.CSS_SELECTOR, "#result tbody tr")
        assert len(rows) == 20  # the preview; totals over 100 are ids 11..40
        assert rows[0].text.split()[:2] == ["11", "refunded"]
        assert "30 rows" in driver.find_element(By.CSS_SELECTOR, "main").text
        screenshot(driver, "request-completed")
        screenshot(driver, "request-phone", PHONE)
        driver.find_element(By.ID, "download").click()
        downloaded = wait_until(lambda: [p for p in downloads.glob("*.csv")], 15, "the download")
        lines = Path(downloaded[0]).read_text().splitlines()
        assert lines[0] == "id,status,total" and len(lines) == 31

        # History, dashboard and users, as an admin.
        sign_in_with_password(driver, story, people.admin.email)
        driver.get(story.url + "/history")
        wait_for(driver, "table.listing")
        screenshot(driver, "history")
        driver.get(story.url + "/dashboard")
        wait_for(driver, "figure.chart svg rect")
        screenshot(driver, "dashboard")
        driver.get(story.url + "/users")
        wait_for(driver, "table.users")
        screenshot(driver, "users")

        # Sign out everywhere: the old session's cookies no longer open anything.
        driver.get(story.url + "/account")
        screenshot(driver, "account")
        admin_cookies = driver.get_cookies()
        driver.find_element(By.ID, "signout-everywhere").click()
        wait_text(driver, "h1", "Sign in to dbquery")
        for cookie in admin_cookies:
            driver.add_cookie(cookie)
        driver.get(story.url + "/users")
        wait_text(driver, "h1", "Sign in to dbquery")


def test_a_query_with_a_script_tag_is_text_in_the_browser(story, tmp_path):
    with chromium(tmp_path) as driver:
        sign_in_with_password(driver, story, story.people.developer.email)
        driver.get(story.url + "/requests/new")
        Select(driver.find_element(By.ID, "target")).select_by_value("pg-shop/shop")
        hostile = "SELECT '<script>alert(1)</script><img src=x onerror=alert(2)>' AS x"
        driver.find_element(By.ID, "query").send_keys(hostile)
        driver.find_element(By.ID, "submit").click()
        wait_for(driver, ".badge-pending")
        assert driver.find_element(By.ID, "content").text == hostile
        driver.get(story.url + "/requests")
        wait_for(driver, "table.listing")
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018
        assert (
            "<script>alert(1)</script>" in driver.find_element(By.CSS_SELECTOR, "td.snippet").text
        )
