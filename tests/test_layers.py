"""Layers hold: surfaces (bot/, web/) -> core/ -> db/; bot/ alone knows Slack."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SLACK_AND_WEB = {"slack_bolt", "slack_sdk", "fastapi", "uvicorn", "starlette", "prometheus_client"}
FORBIDDEN = {
    "core": {"bot"} | SLACK_AND_WEB,
    "db": {"bot", "core"} | SLACK_AND_WEB,
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_upwards_or_knows_slack(layer: str):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no Python files under {layer}/"
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[layer])
        for path in files
    }
    assert {path: bad for path, bad in offences.items() if bad} == {}


# Words of Slack's messaging that only an adapter may use: core says what happened, never how
# or where a surface shows it. (Linking a person to their Slack account is identity, not
# messaging, so `slack_user_id` stays core's.)
SLACK_WORDS = re.compile(
    r"\b(card|cards|channel|channel_id|channels|ts|thread_ts|dm|dms|ephemeral|modal|modals"
    r"|block kit|block_id|chat_postmessage|chat\.postmessage|response_url|trigger_id)\b",
    re.IGNORECASE,
)
# Surfaces: each talks to core, never to another. A composition package may import them all.
ADAPTERS = ("bot", "web")
COMPOSITION = "app"


def test_core_has_no_slack_messaging_vocabulary():
    found = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = SLACK_WORDS.findall(line)
            if words:
                found[f"{path.relative_to(ROOT)}:{number}"] = words
    assert found == {}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_no_adapter_imports_another(adapter: str):
    others = (set(ADAPTERS) - {adapter}) | {COMPOSITION}
    offences = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & others)
        for path in sorted((ROOT / adapter).rglob("*.py"))
    }
    assert {path: bad for path, bad in offences.items() if bad} == {}


def test_the_vocabulary_check_would_see_a_slack_word():
    assert SLACK_WORDS.search("post the request card to its channel")
    assert not SLACK_WORDS.search("resolve the person's slack_user_id; cards_count")
