"""The `dbquery` command (console script): bot's commands, with `serve` serving Slack and the
web portal together."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app.serve import run
from bot import cli


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, serve=run)


if __name__ == "__main__":
    sys.exit(main())
