"""Portal users: adding, listing, deactivating, linking to Slack, and resolving a Slack user."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.errors import InvalidSubmission, NotFound, NotRegistered
from core.users import UserService
from tests.portal import BACKENDS, dispose, fresh_portal_url, portal_services

_numbers = itertools.count(1)


def unique(prefix: str = "user") -> str:
    """A fresh email local part, so tests sharing the module database never collide."""
    return f"{prefix}{next(_numbers)}"


def slack_id() -> str:
    return f"U{next(_numbers):08d}"


@pytest.fixture(scope="module", params=BACKENDS)
def users(request, make_pg_database, tmp_path_factory) -> Iterator[UserService]:
    url = fresh_portal_url(request.param, make_pg_database, tmp_path_factory.mktemp("users"))
    _, service = portal_services(url)
    yield service
    dispose(service)


def add(users: UserService, role: str = "developer", pod: str | None = "payments", **kw):
    email = kw.pop("email", f"{unique()}@example.com")
    return users.add(email=email, name=kw.pop("name", "Some One"), role=role, pod=pod, **kw)


def test_added_user_is_active_and_listed(users):
    sid = slack_id()
    user = users.add(
        email=" dana@example.com ", name=" Dana ", role="developer", pod="payments", slack_id=sid
    )

    assert (user.email, user.name, user.role, user.pod_id) == (
        "dana@example.com",
        "Dana",
        "developer",
        "payments",
    )
    assert (user.slack_user_id, user.is_active) == (sid, True)
    assert user in users.list()
    assert users.by_slack_id(sid) == user


def test_admin_needs_no_pod(users):
    assert add(users, role="admin", pod=None).pod_id is None


def test_list_puts_podless_users_first_then_groups_by_pod_and_email(users):
    add(users, role="admin", pod=None)
    add(users, pod="platform")
    listed = [(u.pod_id or "", u.email) for u in users.list()]
    assert listed == sorted(listed)  # the same order on PostgreSQL and SQLite
    assert listed[0][0] == ""


INVALID_USERS = {
    "email without domain": ({"email": "dana"}, "email"),
    "email with spaces": ({"email": "da na@example.com"}, "email"),
    "empty name": ({"name": "  "}, "name"),
    "unknown role": ({"role": "owner"}, "role"),
    "developer without pod": ({"pod": None}, "pod"),
    "manager without pod": ({"role": "manager", "pod": ""}, "pod"),
    "pod not in the catalogue": ({"pod": "marketing"}, "pod"),
    "malformed Slack id": ({"slack_id": "dana"}, "slack_id"),
}


@pytest.mark.parametrize("case", sorted(INVALID_USERS))
def test_invalid_user_names_the_field_and_adds_nobody(users, case):
    overrides, field = INVALID_USERS[case]
    before = users.list()

    with pytest.raises(InvalidSubmission) as raised:
        add(users, **overrides)

    assert raised.value.field == field
    assert users.list() == before


def test_unknown_pod_message_lists_the_catalogue_pods(users):
    with pytest.raises(InvalidSubmission, match="payments, platform"):
        add(users, pod="marketing")


def test_an_email_is_used_once_whatever_its_case(users):
    email = f"{unique('case')}@example.com"
    add(users, email=email)
    before = users.list()

    with pytest.raises(InvalidSubmission, match="already exists") as raised:
        add(users, email=email.upper())

    assert raised.value.field == "email"
    assert users.list() == before


def test_a_slack_id_is_linked_once(users):
    sid = slack_id()
    first = add(users, slack_id=sid)
    second = add(users)

    with pytest.raises(InvalidSubmission, match=sid) as raised:
        add(users, slack_id=sid)
    assert raised.value.field == "slack_id"
    with pytest.raises(InvalidSubmission, match=sid):
        users.link_slack(second.email, sid)

    assert users.by_slack_id(sid) == first
    assert second in users.list()


def test_deactivate_by_email_in_any_case(users):
    user = add(users)
    deactivated = users.deactivate(user.email.upper())
    assert deactivated.is_active is False
    assert [u.is_active for u in users.list() if u.id == user.id] == [False]


def test_deactivate_or_link_an_unknown_email(users):
    with pytest.raises(NotFound, match="nobody@example.com"):
        users.deactivate("nobody@example.com")
    with pytest.raises(NotFound):
        users.link_slack("nobody@example.com", slack_id())


def test_link_slack_checks_the_id_and_stores_it(users):
    user = add(users)
    with pytest.raises(InvalidSubmission) as raised:
        users.link_slack(user.email, "not-an-id")
    assert raised.value.field == "slack_id"

    sid = slack_id()
    assert users.link_slack(user.email, sid).slack_user_id == sid
    assert users.by_slack_id(sid).id == user.id


# --- resolving a Slack user --------------------------------------------------------------------


class SlackProfiles:
    """Stands in for users.info: Slack id -> profile email, counting the look-ups."""

    def __init__(self, emails: dict[str, str | None]) -> None:
        self.emails = emails
        self.asked: list[str] = []

    def __call__(self, slack_user_id: str) -> str | None:
        self.asked.append(slack_user_id)
        return self.emails.get(slack_user_id)


def test_linked_user_is_resolved_without_asking_slack(users):
    sid = slack_id()
    user = add(users, slack_id=sid)
    profiles = SlackProfiles({})

    assert users.resolve_slack_user(sid, profiles) == user
    assert profiles.asked == []


def test_unlinked_user_is_found_by_profile_email_and_linked(users):
    user = add(users)
    sid = slack_id()
    profiles = SlackProfiles({sid: user.email.upper()})

    resolved = users.resolve_slack_user(sid, profiles)

    assert (resolved.id, resolved.slack_user_id) == (user.id, sid)
    assert users.by_slack_id(sid) == resolved
    assert users.resolve_slack_user(sid, profiles) == resolved
    assert profiles.asked == [sid]


def test_email_of_a_user_linked_to_someone_else_does_not_steal_the_link(users):
    owner_sid = slack_id()
    user = add(users, slack_id=owner_sid)
    intruder = slack_id()

    with pytest.raises(NotRegistered, match="not registered"):
        users.resolve_slack_user(intruder, SlackProfiles({intruder: user.email}))

    assert users.by_slack_id(owner_sid) == user
    assert users.by_slack_id(intruder) is None


@pytest.mark.parametrize("profile_email", [None, "stranger@example.com"])
def test_unknown_slack_user_is_not_registered(users, profile_email):
    sid = slack_id()
    with pytest.raises(NotRegistered, match="Ask a dbquery admin to add you"):
        users.resolve_slack_user(sid, SlackProfiles({sid: profile_email}))


def test_deactivated_user_is_refused_even_when_linked(users):
    sid = slack_id()
    user = add(users, slack_id=sid)
    users.deactivate(user.email)

    with pytest.raises(NotRegistered, match="deactivated"):
        users.resolve_slack_user(sid, SlackProfiles({}))


def test_simultaneous_adds_of_one_email_add_one_user_and_blame_the_email(users):
    """Separate services (engines) released at once: the losers are told the email is taken."""
    url = str(users.sessions.engine.url.render_as_string(hide_password=False))
    services = [portal_services(url)[1] for _ in range(4)]
    email = f"{unique('race')}@example.com"
    barrier = threading.Barrier(len(services))

    def add_once(service: UserService):
        barrier.wait(timeout=30)
        try:
            return service.add(email=email, name="Racer", role="developer", pod="payments")
        except InvalidSubmission as exc:
            return exc

    try:
        with ThreadPoolExecutor(max_workers=len(services)) as pool:
            outcomes = list(pool.map(add_once, services))
    finally:
        for service in services:
            dispose(service)

    errors = [o for o in outcomes if isinstance(o, InvalidSubmission)]
    assert len(errors) == len(services) - 1, outcomes
    assert {e.field for e in errors} == {"email"}
    assert all(email in e.message for e in errors)
    assert [u.email for u in users.list()].count(email) == 1
