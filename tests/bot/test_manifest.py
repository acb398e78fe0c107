"""manifest.yml describes the app the code serves: the command, the URLs, the event, the scopes."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.listeners.commands import COMMAND

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
EVENTS_URL = "https://YOUR-HOST/slack/events"


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def test_every_slack_url_is_the_one_endpoint_serve_answers_on():
    app = manifest()
    [command] = app["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert command["url"] == EVENTS_URL
    settings = app["settings"]
    assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"] == EVENTS_URL
    assert settings["interactivity"]["message_menu_options_url"] == EVENTS_URL
    assert settings["socket_mode_enabled"] is False


def test_the_home_tab_and_its_event_are_enabled():
    app = manifest()
    assert app["features"]["app_home"]["home_tab_enabled"] is True
    assert app["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]


def test_the_bot_has_exactly_the_scopes_it_uses():
    scopes = manifest()["oauth_config"]["scopes"]["bot"]
    assert sorted(scopes) == sorted(
        [
            "commands",
            "chat:write",
            "im:write",
            "users:read",
            "users:read.email",
            "files:read",
            "files:write",
        ]
    )


def test_names_fit_slack_limits():
    app = manifest()
    assert len(app["display_information"]["name"]) <= 35
    assert len(app["display_information"]["description"]) <= 140
    assert len(app["features"]["bot_user"]["display_name"]) <= 80
    [command] = app["features"]["slash_commands"]
    assert len(command["description"]) <= 100
