"""A stored request is analysed everywhere as submit analysed it: with its instance's
allow_server_js, whether the web page, the "Check" button or the claim asks."""

from __future__ import annotations

import pytest

from core.analysis import AnalysisError
from core.analysis_sandbox import analyse_stored
from core.drafts import analyse_draft
from core.requests import Submission, kind_of
from db.migrate import migrate
from db.session import make_engine
from tests.bot.view_fixtures import make_request
from tests.portal import DEFAULT_INSTANCES, dispose, make_catalogue, portal_services, sqlite_url

SERVER_JS = "db.events.find({$where: 'this.a > 1'})"
ALLOWING = {
    **DEFAULT_INSTANCES[1],
    "id": "mongo-js",
    "name": "Events with JS",
    "allow_server_js": True,
}
CATALOGUE = make_catalogue(instances=[*DEFAULT_INSTANCES, ALLOWING])


def stored(instance_id: str):
    return make_request(
        database_type="mongodb",
        instance_id=instance_id,
        database_name="events",
        query_content=SERVER_JS,
    )


@pytest.mark.parametrize("isolated", [True, False])
def test_server_js_is_admin_where_the_instance_allows_it_and_refused_elsewhere(isolated):
    assert analyse_stored(CATALOGUE, stored("mongo-js"), isolated=isolated).kind == "admin"
    with pytest.raises(AnalysisError, match=r"\$where"):
        analyse_stored(CATALOGUE, stored("mongo-events"), isolated=isolated)


def test_the_claim_reads_the_kind_under_the_instance():
    assert kind_of(CATALOGUE, stored("mongo-js")) == "admin"
    assert kind_of(CATALOGUE, stored("mongo-events")) is None


def test_check_agrees_with_submit_on_an_instance_that_allows_server_js(tmp_path):
    url = sqlite_url(tmp_path)
    migrate(make_engine(url))
    requests, users = portal_services(url, CATALOGUE)
    try:
        draft = Submission(target="mongo-js/events", submission_type="query", query=SERVER_JS)
        _instance, analysis = analyse_draft(requests, draft)
        assert analysis.kind == "admin"
    finally:
        dispose(requests)
        dispose(users)
