"""The approver's DM: what is asked, what the analysis found, and the Approve / Reject buttons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from bot.views.limits import (
    MESSAGE_TEXT,
    SECTION_TEXT,
    actions,
    button,
    confirm_dialog,
    count_note,
    fit_escaped,
    header,
    message,
    section,
    slack_len,
    slack_time,
    truncate,
)
from bot.views.request_card import (
    POLICY_PREFIX,
    comments_block,
    content_block,
    content_text,
    decision_block,
    id_context,
    person,
    person_plain,
    request_fields,
    status_label,
    submission_label,
    target_text,
)
from core.approvals import PolicyState
from core.lifecycle import Status, SubmissionType
from core.records import RequestRecord

APPROVE_ACTION = "approve_request"
REJECT_ACTION = "reject_request"
DECISION_BLOCK_PREFIX = "decision:"

KIND_LABEL = {
    "read": ":mag: reads only",
    "write": ":pencil2: writes data",
    "ddl": ":building_construction: changes the schema (DDL)",
    "admin": ":rotating_light: acts on the server itself (admin)",
}
KIND_WORD = {"read": "read-only", "write": "write", "ddl": "schema-changing", "admin": "admin"}
CONFIRM_TITLE = {
    "write": "Approve a write?",
    "ddl": "Approve a schema change?",
    "admin": "Approve an admin action?",
}
CONFIRM_WHAT = {
    "write": "It changes data",
    "ddl": "It changes the schema",
    "admin": "It acts on the database server itself",
}
TABLES_LIMIT = 500
WARNING_LIMIT = 300
ANALYSIS_LIMIT = 1_500
SUMMARY_CONTENT_LIMIT = 900  # the query excerpt in the Home tab and /dbquery pending


class AnalysisLike(Protocol):
    """What views read from core.analysis.Analysis."""

    kind: str
    tables: Iterable[str]
    warnings: Iterable[str]
    reasons: Iterable[str]
    statements: Iterable[Any]


def analysis_for(analyses: Mapping[Any, Any] | None, request: RequestRecord) -> Any | None:
    """The analysis of `request` from a dict keyed by uuid, its string, or the row id."""
    if not analyses:
        return None
    for key in (request.uuid, str(request.uuid), request.id):
        if key in analyses:
            return analyses[key]
    return None


def needs_confirmation(analysis: AnalysisLike | None) -> bool:
    """Anything but a known read asks the approver to confirm (unknown counts as risky)."""
    return analysis is None or analysis.kind != "read"


def _names(values: Iterable[str]) -> list[str]:
    items = sorted(values) if isinstance(values, set | frozenset) else list(values)
    return [str(v) for v in items]


def tables_text(tables: Iterable[str], limit: int = TABLES_LIMIT) -> str:
    """'`orders`, `customers` … and 480 more tables' within `limit`."""
    names = _names(tables)
    if not names:
        return "none found"
    shown: list[str] = []
    for count, name in enumerate(names):
        piece = "`" + fit_escaped(name, 80).replace("`", "'") + "`"
        rest = count_note(count + 1, len(names), "tables") if count + 1 < len(names) else ""
        if slack_len(", ".join([*shown, piece]) + " " + rest) > limit:
            return ", ".join(shown) + " " + count_note(count, len(names), "tables")
        shown.append(piece)
    return ", ".join(shown)


def warnings_text(warnings: Iterable[str], limit: int) -> str:
    lines: list[str] = []
    items = _names(warnings)
    for count, warning in enumerate(items):
        line = f":warning: {fit_escaped(warning, WARNING_LIMIT)}"
        note = count_note(count, len(items), "warnings")
        if slack_len("\n".join([*lines, line, note])) > limit:
            return "\n".join([*lines, note])
        lines.append(line)
    return "\n".join(lines)


def analysis_text(analysis: AnalysisLike | None, limit: int = ANALYSIS_LIMIT) -> str:
    if analysis is None:
        return "*Analysis:* not available; read the query carefully before approving."
    statements = len(list(analysis.statements))
    kind = KIND_LABEL.get(analysis.kind, fit_escaped(str(analysis.kind), 40))
    head = f"*Analysis:* {kind} · {statements:,} statement{'s' if statements != 1 else ''}"
    tables_limit = min(TABLES_LIMIT, limit - slack_len(head) - 20)
    lines = [head, f"*Tables:* {tables_text(analysis.tables, tables_limit)}"]
    reasons = _names(getattr(analysis, "reasons", ()))
    if reasons:
        lines.append(f"*Why not a read:* {fit_escaped('; '.join(reasons), WARNING_LIMIT)}")
    used = slack_len("\n".join(lines)) + 1
    warnings = warnings_text(analysis.warnings, limit - used)
    if warnings:
        lines.append(warnings)
    return truncate("\n".join(lines), limit)


def _confirm_for(request: RequestRecord, analysis: AnalysisLike | None) -> dict[str, Any]:
    if analysis is None:
        title, what = "Approve without an analysis?", "dbquery could not analyse it"
    else:
        title = CONFIRM_TITLE.get(analysis.kind, "Approve this request?")
        what = CONFIRM_WHAT.get(analysis.kind, f"It is a {analysis.kind} request")
    first_warning = next(iter(_names(analysis.warnings)), "") if analysis else ""
    text = f"{what} on {request.target_label}. It runs as soon as you approve."
    if first_warning:
        text += f" Warning: {first_warning}"
    return confirm_dialog(title, text, "Approve and run", "Cancel", style="danger")


def decision_buttons(request: RequestRecord, analysis: AnalysisLike | None) -> dict[str, Any]:
    """Approve / Reject, identical in the DM, the Home tab and /dbquery pending."""
    value = str(request.uuid)
    confirm = _confirm_for(request, analysis) if needs_confirmation(analysis) else None
    return actions(
        [
            button("Approve", APPROVE_ACTION, value, style="primary", confirm=confirm),
            button("Reject", REJECT_ACTION, value, style="danger"),
        ],
        block_id=f"{DECISION_BLOCK_PREFIX}{request.uuid}",
    )


def _kind_word(analysis: AnalysisLike | None) -> str:
    if analysis is None:
        return "unanalysed"
    return KIND_WORD.get(analysis.kind) or fit_escaped(str(analysis.kind), 20)


def ask_sentence(request: RequestRecord, analysis: AnalysisLike | None) -> str:
    what = "script" if request.submission_type == SubmissionType.SCRIPT else "query"
    kind = _kind_word(analysis)
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return (
        f"{person(request.requester)} asks to run {article} *{kind}* {what}"
        f" on *{target_text(request)}*."
    )


def decision_summary(
    request: RequestRecord,
    analysis: AnalysisLike | None,
    *,
    content_limit: int = SUMMARY_CONTENT_LIMIT,
    policy: PolicyState | None = None,
) -> dict[str, Any]:
    """One section describing a waiting request, for lists with decision buttons under each."""
    from bot.views.policy import risk_text

    risk = f"{truncate(risk_text(policy), 700)}\n" if policy is not None else ""
    top = (
        f"{risk}{ask_sentence(request, analysis)}\n{submission_label(request)} · pod"
        f" {fit_escaped(request.pod_name, 80)} · {slack_time(request.created_at)}"
        f" · `{request.short_id}`"
    )
    body = content_text(request, content_limit)
    room = SECTION_TEXT - slack_len(top) - slack_len(body) - 2
    return section(f"{top}\n{analysis_text(analysis, max(min(room, 600), 100))}\n{body}")


def _request_blocks(request: RequestRecord, analysis: AnalysisLike | None) -> list[dict[str, Any]]:
    blocks = [section(ask_sentence(request, analysis)), request_fields(request)]
    blocks.append(content_block(request))
    comments = comments_block(request)
    if comments:
        blocks.append(comments)
    blocks.append(section(analysis_text(analysis)))
    return blocks


def approval_message(
    request: RequestRecord,
    analysis: AnalysisLike | None,
    policy: PolicyState | None = None,
    page_url: str | None = None,
) -> dict[str, Any]:
    """The DM each approver gets, risk and estimate first; the buttons carry the uuid."""
    from bot.views.policy import policy_blocks

    blocks = [
        header(":raising_hand: Approval requested"),
        *policy_blocks(policy, request),
        *_request_blocks(request, analysis),
        decision_buttons(request, analysis),
        id_context(request, page_url),
    ]
    text = (
        f"{person_plain(request.requester)} asks for approval: {_kind_word(analysis)}"
        f" {request.submission_type} on {request.target_label} (request {request.short_id})"
    )
    return message(text, blocks)


def decided_message(
    request: RequestRecord,
    analysis: AnalysisLike | None,
    policy: PolicyState | None = None,
    page_url: str | None = None,
) -> dict[str, Any]:
    """The approval DM after someone decided: same content, buttons replaced by the decision."""
    from bot.views.policy import policy_blocks

    title = ":white_check_mark: Approved"
    if request.status == Status.REJECTED:
        title = ":no_entry_sign: Rejected"
    elif request.status == Status.PENDING:
        title = status_label(request.status)
    blocks = [
        header(title),
        *policy_blocks(policy, request),
        *_request_blocks(request, analysis),
        decision_block(request),
        id_context(request, page_url),
    ]
    who = plain_decider(request)
    verb = "rejected" if request.status == Status.REJECTED else "approved"
    text = f"Request {request.short_id} on {request.target_label} was {verb} {who}"
    if request.status == Status.PENDING:
        text = f"Request {request.short_id} on {request.target_label} is pending"
    return message(text, blocks)


def plain_decider(request: RequestRecord) -> str:
    email = request.approver_email or ""
    if request.approver is None and email.startswith(POLICY_PREFIX):
        return f"automatically by policy {truncate(email.removeprefix(POLICY_PREFIX), 80)}"
    return f"by {person_plain(request.approver)}"


def reminder_text(request: RequestRecord, escalated: bool) -> str:
    """A nudge in the approver's DM thread; escalated: the note admins get."""
    who = fit_escaped(person_plain(request.requester), 120)
    where = target_text(request)
    since = slack_time(request.created_at)
    if escalated:
        text = (
            f":rotating_light: Request `{request.short_id}` from {who} (pod"
            f" {fit_escaped(request.pod_name, 80)}, {where}) has waited since {since} without"
            " a decision from the pod's managers. As an admin you can approve or reject it."
        )
    else:
        text = (
            f":alarm_clock: Reminder: request `{request.short_id}` from {who} on {where} has"
            f" been waiting for your decision since {since}."
        )
    return truncate(text, MESSAGE_TEXT)


__all__ = [
    "APPROVE_ACTION",
    "REJECT_ACTION",
    "analysis_for",
    "analysis_text",
    "approval_message",
    "decided_message",
    "decision_block",
    "decision_buttons",
    "decision_summary",
    "needs_confirmation",
    "reminder_text",
]
