"""Both surfaces of one `dbquery serve`, in a real browser and in (fake) Slack.

Signing in through the link Slack DMs; a request submitted on the web reaches the manager's
Slack DM; approved in the browser, the requester's Slack card is updated and the result posted
in its thread; and a request made in Slack is approved in the browser.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.app.test_serve import ANN, MO, PASSWORD, set_password
from tests.bot.conftest import SlackSender, query_form
from tests.bot.fakeslack import FakeSlack
from tests.bot.serve_process import Served, prepare_portal, serve_env
from tests.conftest import VENV_BIN, free_port, wait_for_port
from tests.web.browser import chromium, wait_for, wait_text


@pytest.fixture(scope="module")
def served(tmp_path_factory, fake_slack: FakeSlack, target_database: str) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve-browser")
    port = free_port()
    env = serve_env(
        workdir,
        f"sqlite:///{workdir / 'portal.sqlite3'}",
        target_database,
        fake_slack.api_url,
        DBQUERY_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    prepare_portal(env, ANN, MO)
    assert set_password(env, MO[0], PASSWORD).returncode == 0
    log = workdir / "serve.log"
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "dbquery"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Served(f"http://127.0.0.1:{port}", env, proc, log)
    try:
        wait_for_port(port, proc, "dbquery serve")
        yield server
    finally:
        server.stop()


def test_approve_in_the_browser_a_request_made_in_slack(
    served: Served, fake_slack: FakeSlack, target_database: str, tmp_path: Path
):
    sender = SlackSender(served.url, fake_slack)
    form = query_form(f"pg-shop/{target_database}", "SELECT id, customer FROM orders ORDER BY id")
    assert sender.submit_view("U0ANN", "submit_request", form).text == ""
    [dm] = fake_slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "DU0MO")

    with chromium(tmp_path) as driver:
        driver.get(served.url + "/signin")
        driver.find_element(By.CSS_SELECTOR, "details summary").click()
        driver.find_element(By.ID, "pw-email").send_keys(MO[0])
        driver.find_element(By.ID, "pw-password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "#password-form button").click()
        wait_for(driver, "header nav")
        driver.get(served.url + "/approvals")
        card = wait_for(driver, "article.approval")
        assert "ann" in card.text
        card.find_element(By.CSS_SELECTOR, "button.primary").click()
        wait_text(driver, ".timeline", "Approved by " + MO[0])
        request_id = driver.current_url.rsplit("/", 1)[1]
        # The approval DM linked to the page the approval was made on.
        assert f"<{served.url}/requests/{request_id}|Open in dbquery>" in json.dumps(dm.args)

        # Slack hears of the web's approval: the card moves on and the result lands in its thread.
        fake_slack.wait_for(
            "chat.update",
            lambda c: c.args.get("channel") == "DU0ANN" and request_id in json.dumps(c.args),
        )
        fake_slack.wait_for(
            "chat.postMessage",
            lambda c: (
                c.args.get("channel") == "DU0ANN"
                and c.args.get("thread_ts") is not None
                and "globex" in json.dumps(c.args)
            ),
        )
        wait_for(driver, ".badge-completed", timeout=20)
        cells = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#result td")]
        assert cells[:6] == ["1", "acme", "2", "globex", "3", "initech"]


def test_sign_in_by_slack_link_submit_on_the_web_and_slack_follows(
    served: Served, fake_slack: FakeSlack, target_database: str, tmp_path: Path
):
    with chromium(tmp_path) as driver:
        # The sign-in link arrives as a Slack DM to the person's linked account.
        driver.get(served.url + "/signin")
        driver.find_element(By.ID, "link-email").send_keys(ANN[0])
        driver.find_element(By.CSS_SELECTOR, "#link-form button").click()
        wait_text(driver, ".notice", "sign-in link is on its way")
        [dm] = fake_slack.wait_for(
            "chat.postMessage",
            lambda c: (
                c.args.get("channel") == "DU0ANN" and "/auth/link?token=" in json.dumps(c.args)
            ),
        )
        link = re.search(r"http://127\.0\.0\.1:\d+/auth/link\?token=[\w-]+", json.dumps(dm.args))
        assert link is not None, dm.args
        driver.get(link.group(0))
        driver.find_element(By.ID, "continue").click()
        wait_text(driver, "h1", "My requests")

        # Submitted on the web: the manager's approval DM and the requester's card arrive.
        driver.get(served.url + "/requests/new")
        Select(driver.find_element(By.ID, "target")).select_by_value(f"pg-shop/{target_database}")
        driver.find_element(By.ID, "query").send_keys("SELECT customer FROM orders WHERE id = 2")
        driver.find_element(By.ID, "submit").click()
        wait_for(driver, ".badge-pending")
        request_url = driver.current_url
        request_id = request_url.rsplit("/", 1)[1]
        fake_slack.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == "DU0MO" and request_id in json.dumps(c.args),
        )
        fake_slack.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == "DU0ANN" and request_id in json.dumps(c.args),
        )
        ann = driver.get_cookies()

        # Approved on the web by the manager: Slack updates Ann's card, and her page follows.
        driver.delete_all_cookies()
        driver.get(served.url + "/signin")
        driver.find_element(By.CSS_SELECTOR, "details summary").click()
        driver.find_element(By.ID, "pw-email").send_keys(MO[0])
        driver.find_element(By.ID, "pw-password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "#password-form button").click()
        wait_for(driver, "header nav")
        driver.get(request_url)
        driver.find_element(By.ID, "approve").click()
        wait_text(driver, ".timeline", "Approved by " + MO[0])
        fake_slack.wait_for(
            "chat.update",
            lambda c: (
                c.args.get("channel") == "DU0ANN"
                and request_id in json.dumps(c.args)
                and "pprove" in json.dumps(c.args)
            ),
        )
        driver.delete_all_cookies()
        for cookie in ann:
            driver.add_cookie(cookie)
        driver.get(request_url)
        wait_for(driver, ".badge-completed", timeout=20)
        assert [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#result td")] == ["globex"]
