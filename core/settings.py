"""Process settings from the environment (pydantic-settings)."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

SLACK_APP_HELP = (
    "Create the Slack app from manifest.yml (api.slack.com/apps -> Create New App -> "
    "From an app manifest), install it to your workspace, then set SLACK_BOT_TOKEN (xoxb-..., "
    "OAuth & Permissions) and SLACK_SIGNING_SECRET (Basic Information); set SLACK_APP_TOKEN "
    "(xapp-..., connections:write) as well to use Socket Mode instead of HTTP. "
    "See README.md, 'Create the Slack app'."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(default="sqlite:///dbquery.sqlite3", alias="DBQUERY_DATABASE_URL")
    config_path: Path = Field(default=Path("dbquery.yml"), alias="DBQUERY_CONFIG")
    results_dir: Path = Field(default=Path("dbquery-results"), alias="DBQUERY_RESULTS_DIR")
    workers: int = Field(default=4, ge=1, le=64, alias="DBQUERY_WORKERS")
    remind_after_min: int = Field(default=30, ge=1, alias="DBQUERY_REMIND_AFTER_MIN")
    escalate_after_min: int = Field(default=120, ge=1, alias="DBQUERY_ESCALATE_AFTER_MIN")
    log_level: str = Field(default="INFO", alias="DBQUERY_LOG_LEVEL")
    # Result files larger than this are written gzip-compressed (.csv.gz, .jsonl.gz).
    compress_over_mb: int = Field(default=20, ge=0, alias="DBQUERY_COMPRESS_OVER_MB")
    # Slack's limit for one uploaded file; a larger result file is cut there.
    upload_limit_mb: int = Field(default=1024, ge=1, alias="DBQUERY_UPLOAD_LIMIT_MB")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    def missing_slack_settings(self) -> list[str]:
        """The Slack variables `serve` still needs (the signing secret is unused in Socket Mode)."""
        missing = []
        if not self.slack_bot_token or not self.slack_bot_token.get_secret_value():
            missing.append("SLACK_BOT_TOKEN")
        if not self.slack_app_token and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        return missing


def load_settings() -> Settings:
    """The settings, or a ConfigError naming the variable (never echoing its value: secrets)."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"environment variable {variable}: {message}") from None
