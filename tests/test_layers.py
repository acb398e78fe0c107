"""The layers of ARCHITECTURE.md hold: bot/ and web/ -> core/ -> db/; only bot/ knows Slack,
only the surfaces know HTTP, and the two surfaces never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SLACK = {"slack_bolt", "slack_sdk"}
SLACK_AND_WEB = SLACK | {"fastapi", "uvicorn", "starlette", "prometheus_client"}
FORBIDDEN = {
    "bot": {"web", "app"},
    "web": {"bot", "app"} | SLACK,
    "core": {"bot", "web", "app"} | SLACK_AND_WEB,
    "db": {"bot", "web", "app", "core"} | SLACK_AND_WEB,
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
