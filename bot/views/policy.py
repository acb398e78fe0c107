"""What approval policies add to the DM and the card: risk and estimate first, the approval
steps, the schedule, a policy's own approval, the "Run after" input and "Run again"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.views.limits import (
    SECTION_TEXT,
    button,
    fit_escaped,
    section,
    slack_time,
    truncate,
)
from core.approvals import PolicyState
from core.lifecycle import Status
from core.records import RequestRecord

RUN_AFTER_BLOCK = "run_after"
RUN_AFTER_ACTION = "run_after"
RERUN_ACTION = "rerun_request"
RISK_BLOCK_ID = "risk"

RISK_ICON = {
    "low": ":large_green_circle:",
    "medium": ":large_yellow_circle:",
    "high": ":large_orange_circle:",
    "critical": ":red_circle:",
}
ESTIMATE_LIMIT = 600
REASONS_LIMIT = 400


def risk_text(state: PolicyState | None) -> str:
    """'🟠 *Risk: high* · ~12,400 rows affected · full scan of `orders` (1.2M rows)'."""
    if state is None or state.risk_level is None:
        return ":hourglass_flowing_sand: *Risk:* not known yet (estimating the cost on the target)"
    icon = RISK_ICON.get(state.risk_level, ":grey_question:")
    line = f"{icon} *Risk: {fit_escaped(state.risk_level, 20)}*"
    if state.estimate_summary:
        # The summary's own `backticks` name tables; escaping keeps the rest plain.
        line += f" · {fit_escaped(state.estimate_summary, ESTIMATE_LIMIT)}"
    if state.risk_reasons:
        reasons = fit_escaped("; ".join(state.risk_reasons), REASONS_LIMIT)
        line += f"\n_Why: {reasons}_"
    return truncate(line, SECTION_TEXT)


def risk_block(state: PolicyState | None) -> dict[str, Any]:
    return section(risk_text(state), block_id=RISK_BLOCK_ID)


def steps_text(state: PolicyState | None, request: RequestRecord) -> str | None:
    """'Step 1 of 2 approved by maya@… — needs a second approval from admins (schema-changes)'."""
    if state is None or state.approvals_required < 2:
        return None
    done = state.approvals_given
    policy = fit_escaped(state.second_approval_policy or "", 80)
    if not done:
        return f":busts_in_silhouette: *Step 1 of 2* · policy {policy} needs two approvals"
    first = done[0]
    line = (
        f":busts_in_silhouette: *Step 1 of 2* approved by {fit_escaped(first.approver_email, 120)}"
        f" {slack_time(first.approved_at)}"
    )
    if request.status == Status.PENDING:
        line += f" · *step 2 of 2* needs {state.second_approver} (policy {policy})"
    elif len(done) > 1:
        line += f" · step 2 of 2 by {fit_escaped(done[1].approver_email, 120)}"
    return line


def auto_approval_text(state: PolicyState | None) -> str | None:
    name = state.auto_approved_by if state else None
    if name is None:
        return None
    return f":robot_face: Approved automatically by policy *{fit_escaped(name, 80)}*"


def schedule_text(state: PolicyState | None, request: RequestRecord) -> str | None:
    """'Run after …' while pending; 'Scheduled for …' once approved and waiting."""
    if state is None:
        return None
    if request.status == Status.APPROVED and state.not_before is not None:
        return f":calendar: Scheduled for {slack_time(state.not_before)}"
    if request.status == Status.PENDING and state.run_after is not None:
        return f":calendar: Run after {slack_time(state.run_after)}"
    return None


def rerun_text(state: PolicyState | None) -> str | None:
    if state is None or state.rerun_of_uuid is None:
        return None
    return f":repeat: Runs request `{str(state.rerun_of_uuid)[:8]}` again"


def policy_lines(state: PolicyState | None, request: RequestRecord) -> list[str]:
    lines = [
        auto_approval_text(state),
        steps_text(state, request),
        schedule_text(state, request),
        rerun_text(state),
    ]
    return [line for line in lines if line]


def policy_blocks(state: PolicyState | None, request: RequestRecord) -> list[dict[str, Any]]:
    """Risk first, then whatever the policies add; nothing for a request stored before them."""
    if state is None:
        return []
    blocks = [risk_block(state)]
    lines = policy_lines(state, request)
    if lines:
        blocks.append(section("\n".join(lines)))
    return blocks


def run_again_button(request: RequestRecord) -> dict[str, Any]:
    return button("Run again", RERUN_ACTION, str(request.uuid))


def run_after_input(initial: datetime | None = None) -> dict[str, Any]:
    """The submit modal's optional "Run after" (Slack's date and time picker, in epoch seconds)."""
    element: dict[str, Any] = {"type": "datetimepicker", "action_id": RUN_AFTER_ACTION}
    if initial is not None:
        element["initial_date_time"] = int(initial.timestamp())
    return {
        "type": "input",
        "block_id": RUN_AFTER_BLOCK,
        "optional": True,
        "label": {"type": "plain_text", "text": "Run after"},
        "hint": {
            "type": "plain_text",
            "text": "Optional: once approved, it waits until then.",
        },
        "element": element,
    }


__all__ = [
    "RERUN_ACTION",
    "RUN_AFTER_BLOCK",
    "policy_blocks",
    "risk_text",
    "run_after_input",
    "run_again_button",
]
