"""The requester's request card, and the pieces every view uses to describe a request."""

from __future__ import annotations

import re
from typing import Any

from bot.views.limits import (
    SECTION_TEXT,
    actions,
    code_block,
    context,
    fields_section,
    fit_escaped,
    header,
    message,
    plain_time,
    quote,
    section,
    slack_len,
    slack_time,
    truncate,
)
from core.approvals import PolicyState
from core.lifecycle import FINAL_STATUSES, Status, SubmissionType
from core.records import RequestRecord, UserRecord

STATUS_EMOJI = {
    Status.PENDING: ":hourglass_flowing_sand:",
    Status.APPROVED: ":white_check_mark:",
    Status.REJECTED: ":no_entry_sign:",
    Status.EXECUTING: ":gear:",
    Status.COMPLETED: ":heavy_check_mark:",
    Status.FAILED: ":x:",
}
# The query's share of a 3,000-character section, leaving room for a label around it.
CONTENT_LIMIT = 2_600
COMMENTS_LIMIT = 1_500
SCRIPT_PREVIEW_LINES = 20
NAME_LIMIT = 120  # a person's or target's name inside a sentence or a field
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def status_label(status: str) -> str:
    """':gear: Executing' (emoji codes render in mrkdwn and in plain_text with emoji on)."""
    emoji = STATUS_EMOJI.get(status, ":grey_question:")
    return f"{emoji} {str(status).capitalize()}"


def person(user: UserRecord | None) -> str:
    """A mention when Slack knows the person, else their escaped name (mrkdwn)."""
    if user is None:
        return "someone"
    if user.slack_user_id and _SLACK_USER_ID.match(user.slack_user_id):
        return f"<@{user.slack_user_id}>"
    return fit_escaped(user.name, NAME_LIMIT)


def person_plain(user: UserRecord | None) -> str:
    return truncate(user.name, NAME_LIMIT) if user else "someone"


def target_text(request: RequestRecord) -> str:
    """'Shop PostgreSQL / shop' escaped for mrkdwn."""
    return fit_escaped(request.target_label, NAME_LIMIT)


def submission_label(request: RequestRecord) -> str:
    if request.submission_type == SubmissionType.SCRIPT:
        # A backtick in the file name would end the inline code span early.
        name = fit_escaped(request.script_filename or "script", NAME_LIMIT).replace("`", "'")
        return f"Script `{name}`"
    return "Query"


POLICY_PREFIX = "policy:"


def decider(request: RequestRecord) -> str:
    """Who decided: the person, or 'automatically by policy <name>' when a policy did."""
    email = request.approver_email or ""
    if request.approver is None and email.startswith(POLICY_PREFIX):
        return f"automatically by policy {fit_escaped(email.removeprefix(POLICY_PREFIX), 80)}"
    return f"by {person(request.approver)}"


def decision_line(request: RequestRecord) -> str | None:
    """'Approved by @ann at <date>' / 'Rejected by @ann at <date>' once someone has decided."""
    if request.status == Status.REJECTED:
        when = slack_time(request.rejected_at)
        return f":no_entry_sign: Rejected {decider(request)} at {when}"
    if request.approved_at is not None:
        when = slack_time(request.approved_at)
        return f":white_check_mark: Approved {decider(request)} at {when}"
    return None


def request_fields(request: RequestRecord) -> dict[str, Any]:
    """The two-column summary every view shows: who, where, what, when, status."""
    kind = "MongoDB" if request.database_type == "mongodb" else "PostgreSQL"
    pairs = [
        ("Requester", person(request.requester)),
        ("Pod", fit_escaped(request.pod_name, NAME_LIMIT)),
        ("Target", f"{target_text(request)} ({kind})"),
        ("Type", submission_label(request)),
        ("Submitted", slack_time(request.created_at)),
        ("Status", status_label(request.status)),
    ]
    if request.approver is not None:
        verb = "Rejected by" if request.status == Status.REJECTED else "Approved by"
        pairs.append((verb, person(request.approver)))
    return fields_section(pairs)


def content_text(request: RequestRecord, limit: int = CONTENT_LIMIT) -> str:
    """The query in a code block, or a script's first lines; cut visibly to `limit`."""
    if request.submission_type != SubmissionType.SCRIPT:
        return code_block(request.content, limit, what="the query")
    lines = request.content.splitlines() or [""]
    if len(lines) <= SCRIPT_PREVIEW_LINES:
        return code_block(request.content, limit, what="the script")
    note = (
        f"\n_First {SCRIPT_PREVIEW_LINES} of {len(lines):,} lines shown;"
        " the whole script runs on approval._"
    )
    head = "\n".join(lines[:SCRIPT_PREVIEW_LINES])
    return code_block(head, limit - slack_len(note), what="the preview") + note


def content_block(request: RequestRecord, limit: int = CONTENT_LIMIT) -> dict[str, Any]:
    return section(content_text(request, min(limit, SECTION_TEXT)))


def comments_block(request: RequestRecord, limit: int = COMMENTS_LIMIT) -> dict[str, Any] | None:
    if not request.comments or not request.comments.strip():
        return None
    label = "*Comments*\n"
    return section(label + quote(request.comments, min(limit, SECTION_TEXT) - len(label)))


def id_context(request: RequestRecord, page_url: str | None = None) -> dict[str, Any]:
    """The request's id, and a link to its page in the web portal when there is one."""
    text = f"Request `{request.short_id}` · {request.uuid}"
    if page_url:
        text += f" · <{page_url}|Open in dbquery>"
    return context(text)


def progress_line(request: RequestRecord) -> str | None:
    """Where the request is now, for the requester."""
    if request.status == Status.PENDING:
        return ":hourglass_flowing_sand: Waiting for a manager of your pod to approve it."
    if request.status == Status.APPROVED:
        return ":white_check_mark: Approved; it runs in a moment."
    if request.status == Status.EXECUTING:
        return f":gear: Running since {slack_time(request.execution_started_at)}."
    if request.status in (Status.COMPLETED, Status.FAILED):
        return (
            f"{status_label(request.status)} at {slack_time(request.execution_completed_at)};"
            " the outcome is in the thread below."
        )
    return None


def decision_block(request: RequestRecord) -> dict[str, Any]:
    """Who decided and when, the rejection reason, and where the request is now."""
    line = decision_line(request) or status_label(request.status)
    if request.status == Status.REJECTED:
        reason = request.rejection_reason or "(no reason given)"
        return section(f"{line}\n" + quote(reason, SECTION_TEXT - slack_len(line) - 1))
    if request.status in (Status.EXECUTING, Status.COMPLETED, Status.FAILED):
        line += f"\nNow: {status_label(request.status)}"
    return section(line)


def excerpt(request: RequestRecord, limit: int = 150) -> str:
    """The first line of the query (or the script's name) as inline code, for one-line lists."""
    if request.submission_type == SubmissionType.SCRIPT:
        return submission_label(request)
    first = " ".join(request.content[: limit * 4].split())
    return "`" + (fit_escaped(first, limit).replace("`", "'") or "(empty)") + "`"


def request_line(request: RequestRecord) -> str:
    """One request in a list: status, id, target, when, what, and the decision if any."""
    line = (
        f"{status_label(request.status)} `{request.short_id}` · *{target_text(request)}*"
        f" · {slack_time(request.created_at)}\n{excerpt(request)}"
    )
    if request.status == Status.REJECTED:
        reason = fit_escaped(" ".join((request.rejection_reason or "").split()), 200)
        line += f"\nRejected by {person(request.approver)}: {reason or '(no reason given)'}"
    return line


def request_card(
    request: RequestRecord, policy: PolicyState | None = None, page_url: str | None = None
) -> dict[str, Any]:
    """The requester's DM card; updated in place as the status changes.

    Risk and estimate come first; a finished request offers "Run again".
    """
    from bot.views.policy import policy_blocks, run_again_button

    blocks: list[dict[str, Any]] = [
        header(f"Your dbquery request · {status_label(request.status)}"),
        *policy_blocks(policy, request),
        request_fields(request),
        content_block(request),
    ]
    comments = comments_block(request)
    if comments:
        blocks.append(comments)
    if request.status == Status.REJECTED:
        blocks.append(decision_block(request))
    else:
        progress = progress_line(request)
        if request.status == Status.APPROVED and policy is not None and policy.not_before:
            progress = None  # the schedule above says when it runs
        lines = [line for line in (decision_line(request), progress) if line]
        blocks.append(section("\n".join(lines) or status_label(request.status)))
    if request.status in FINAL_STATUSES:
        blocks.append(actions([run_again_button(request)], block_id=f"rerun:{request.uuid}"))
    blocks.append(id_context(request, page_url))
    text = (
        f"Your request {request.short_id} on {request.target_label} is {request.status}"
        f" (submitted {plain_time(request.created_at)})"
    )
    return message(text, blocks)


__all__ = [
    "STATUS_EMOJI",
    "comments_block",
    "content_block",
    "content_text",
    "decision_block",
    "decision_line",
    "excerpt",
    "id_context",
    "person",
    "person_plain",
    "request_card",
    "request_fields",
    "request_line",
    "status_label",
    "submission_label",
    "target_text",
]
