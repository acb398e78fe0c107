"""`serve` tests reuse the Slack side's real servers: the fake Slack Web API and a target."""

from tests.bot.conftest import fake_slack, target_database  # noqa: F401
