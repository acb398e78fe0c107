"""The `dbquery` command: migrate, serve, users, requests, check."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core.catalogue import Catalogue, Instance, load_catalogue
from core.errors import CredentialsError, DbqueryError
from core.lifecycle import Role, Status
from core.privileges import check_privileges
from core.secrets import SecretStore
from core.settings import SLACK_APP_HELP, Settings, load_settings
from core.wiring import build_core
from db.errors import PortalDatabaseError
from db.migrate import current_revision, head_revision, migrate
from db.session import make_engine


class UsageError(DbqueryError):
    """Bad command-line input: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and exits 2; keep it to one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dbquery", description="Slack-first approval gate for database queries")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=Parser, metavar="COMMAND"
    )

    sub.add_parser("migrate", help="create or upgrade the portal database schema")

    serve = sub.add_parser("serve", help="run the Slack bot and the execution worker")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--host", default="0.0.0.0")

    users = sub.add_parser("users", help="manage portal users").add_subparsers(
        dest="users_command", required=True, parser_class=Parser, metavar="COMMAND"
    )
    add = users.add_parser("add", help="add a user")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--pod", help="pod id from the catalogue (optional for admins)")
    add.add_argument("--slack-id", help="Slack user id, e.g. U0123ABCD")
    users.add_parser("list", help="list users")
    deactivate = users.add_parser("deactivate", help="deactivate a user")
    deactivate.add_argument("--email", required=True)
    link = users.add_parser("link-slack", help="link a user to a Slack user id")
    link.add_argument("--email", required=True)
    link.add_argument("--slack-id", required=True)

    requests = sub.add_parser("requests", help="inspect requests").add_subparsers(
        dest="requests_command", required=True, parser_class=Parser, metavar="COMMAND"
    )
    listing = requests.add_parser("list", help="recent requests")
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument("--limit", type=int, default=20)
    show = requests.add_parser("show", help="one request in full")
    show.add_argument("uuid")

    sub.add_parser("check", help="check the configuration, the portal DB and every target")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)
        return COMMANDS[args.command](args, settings) or 0
    except (DbqueryError, PortalDatabaseError) as exc:
        print(f"dbquery: {exc.message}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        print(f"dbquery: cannot use the portal database: {reason}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"dbquery: portal database error: {type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _services(settings: Settings, catalogue: Catalogue | None = None):
    core = build_core(settings, catalogue)
    return core.requests, core.users


def cmd_migrate(args, settings: Settings) -> int:
    before, after = migrate(make_engine(settings.database_url))
    if before == after:
        print(f"portal database already at {after}; nothing to do")
    else:
        print(f"portal database migrated from {before or 'empty'} to {after}")
    return 0


def cmd_serve(args, settings: Settings) -> int:
    missing = settings.missing_slack_settings()
    if missing:
        print(
            f"dbquery: cannot start the Slack bot: set {' and '.join(missing)}.\n{SLACK_APP_HELP}",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a TCP port")
    from bot.server import run

    return run(settings, host=args.host, port=args.port)


def cmd_users(args, settings: Settings) -> int:
    _, users = _services(settings)
    if args.users_command == "add":
        user = users.add(
            email=args.email, name=args.name, role=args.role, pod=args.pod, slack_id=args.slack_id
        )
        print(f"added {user.email} ({user.role}{', pod ' + user.pod_id if user.pod_id else ''})")
    elif args.users_command == "list":
        rows = [
            (
                u.email,
                u.name,
                u.role,
                u.pod_id or "-",
                u.slack_user_id or "-",
                "active" if u.is_active else "inactive",
            )
            for u in users.list()
        ]
        _table(("EMAIL", "NAME", "ROLE", "POD", "SLACK", "STATE"), rows)
    elif args.users_command == "deactivate":
        user = users.deactivate(args.email)
        print(f"deactivated {user.email}")
    elif args.users_command == "link-slack":
        user = users.link_slack(args.email, args.slack_id)
        print(f"linked {user.email} to Slack user {user.slack_user_id}")
    return 0


def cmd_requests(args, settings: Settings) -> int:
    requests, _ = _services(settings, catalogue=Catalogue())
    if args.requests_command == "list":
        if not 0 < args.limit <= 1000:
            raise UsageError("--limit must be between 1 and 1000")
        rows = [
            (
                str(r.uuid),
                r.status,
                r.requester.email,
                r.target_label,
                r.submission_type,
                f"{r.created_at:%Y-%m-%d %H:%M}",
            )
            for r in requests.recent(status=args.status, limit=args.limit)
        ]
        _table(("UUID", "STATUS", "REQUESTER", "TARGET", "TYPE", "CREATED (UTC)"), rows)
    else:
        r = requests.find(args.uuid)
        fields = {
            "uuid": str(r.uuid),
            "status": r.status,
            "requester": f"{r.requester.name} <{r.requester.email}>",
            "pod": f"{r.pod_name} ({r.pod_id})",
            "target": f"{r.instance_name} ({r.instance_id}, {r.database_type}) / {r.database_name}",
            "type": r.submission_type + (f" ({r.script_filename})" if r.script_filename else ""),
            "comments": r.comments or "-",
            "created": f"{r.created_at:%Y-%m-%d %H:%M:%S} UTC",
            "decided by": r.approver.name if r.approver else "-",
            "rejection reason": r.rejection_reason or "-",
            "error": r.execution_error or "-",
        }
        width = max(len(k) for k in fields)
        for key, value in fields.items():
            print(f"{key:<{width}}  {value}")
        print("\ncontent:\n" + r.content)
        summary = r.result_summary()
        if summary:
            print("\nresult:\n" + json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def cmd_check(args, settings: Settings) -> int:
    catalogue = load_catalogue(settings.config_path)
    print(
        f"catalogue {settings.config_path}: {len(catalogue.pods)} pods, "
        f"{len(catalogue.instances)} instances"
    )
    engine = make_engine(settings.database_url)
    migrated = current_revision(engine) == head_revision()
    state = "migrated" if migrated else "NOT migrated: run `dbquery migrate`"
    print(f"portal database: reachable, {state}")
    missing = settings.missing_slack_settings()
    print("slack: " + ("configured" if not missing else f"missing {', '.join(missing)}"))
    unreachable = 0
    secrets = SecretStore()
    for instance in catalogue.instances:
        try:
            socket.create_connection((instance.host, instance.port), timeout=3).close()
            status = "reachable"
        except OSError as exc:
            unreachable += 1
            status = f"UNREACHABLE ({exc.strerror or exc})"
        print(
            f"instance {instance.id} ({instance.type}, {instance.host}:{instance.port}): {status}"
        )
        if status == "reachable":
            _print_privileges(instance, secrets)
    return 1 if unreachable or not migrated else 0


def _print_privileges(instance: Instance, secrets: SecretStore) -> None:
    """Warn about what the instance's credentials may do that dbquery never needs."""
    try:
        report = check_privileges(instance, secrets.credentials(instance.secret))
    except CredentialsError as exc:
        print(f"  credentials: cannot be read: {exc.message}")
        return
    if report.problem:
        print(f"  credentials: privileges not checked: {report.problem}")
        return
    who = report.user or "(no user)"
    if not report.warnings:
        print(f"  credentials {who}: no privileges beyond what dbquery needs")
        return
    print(f"  WARNING: credentials {who} can do more than dbquery needs (see README,")
    print("  'Which role to create for dbquery'):")
    for warning in report.warnings:
        print(f"    - {warning}")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())


COMMANDS = {
    "migrate": cmd_migrate,
    "serve": cmd_serve,
    "users": cmd_users,
    "requests": cmd_requests,
    "check": cmd_check,
}

if __name__ == "__main__":
    sys.exit(main())
