"""App Home: my recent requests and, for managers and admins, the requests waiting for them."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.middleware import portal_user
from bot.services import Services
from bot.views.home import home_view
from core.records import UserRecord

MINE_LIMIT = 10
WAITING_LIMIT = 20

log = logging.getLogger("dbquery.bot.home")


def publish_home(client: WebClient, services: Services, user: UserRecord) -> None:
    """Render the person's Home tab from the portal database and publish it."""
    if not user.slack_user_id:
        return
    requests = services.core.requests
    mine = requests.recent(user_id=user.id, limit=MINE_LIMIT)
    waiting = requests.pending_for(user, limit=WAITING_LIMIT)
    view = home_view(
        user,
        mine,
        waiting,
        services.analyses.of_each(waiting),
        services.core.requests.policy_states(waiting),
    )
    try:
        client.views_publish(user_id=user.slack_user_id, view=view)
    except SlackApiError as exc:
        log.warning("views.publish failed: %s", exc.response.get("error"))


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def app_home_opened(event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        # The event also fires for the Messages tab, which has nothing to render.
        if event.get("tab", "home") != "home":
            return
        services.after_ack("app_home_opened", publish_home, client, services, portal_user(context))


__all__ = ["publish_home", "register"]
