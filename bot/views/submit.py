"""The submit modal (pick a target, paste a query or attach a script), its target search, and
what the modal turns into while a slow submission is checked and once it is stored or refused."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.views.limits import (
    MODAL_BUTTON_TEXT,
    MODAL_TITLE,
    OPTION_GROUP_LABEL,
    OPTION_GROUPS_MAX,
    OPTION_VALUE,
    OPTIONS_MAX,
    PLACEHOLDER_TEXT,
    PLAIN_TEXT_INPUT_MAX,
    SECTION_TEXT,
    code_block,
    context,
    fit_escaped,
    input_block,
    option,
    plain,
    section,
    slack_len,
    truncate,
)
from core.catalogue import Catalogue, DatabaseType, Instance
from core.lifecycle import SubmissionType
from core.records import RequestRecord
from core.requests import COMMENTS_MAX_CHARS

SUBMIT_CALLBACK = "submit_request"
# The modal a slow submission turns into: it has no inputs, so Slack never submits it.
STATUS_CALLBACK = f"{SUBMIT_CALLBACK}_status"
TITLE = "New dbquery request"
TARGET_BLOCK = "target"
TYPE_BLOCK = "submission_type"
QUERY_BLOCK = "query"
SCRIPT_BLOCK = "script"
COMMENTS_BLOCK = "comments"
SCRIPT_FILETYPES = ["sql", "js", "txt"]
TYPE_LABEL = {
    SubmissionType.QUERY: "Query (paste it below)",
    SubmissionType.SCRIPT: "Script file (.sql, .js or .txt)",
}
ENGINE_LABEL = {DatabaseType.POSTGRESQL: "PostgreSQL", DatabaseType.MONGODB: "MongoDB"}

Target = tuple[Instance, str]


def target_value(instance: Instance, database: str) -> str:
    """The option value the submit listener parses: '<instance_id>/<database>'."""
    return f"{instance.id}/{database}"


def offerable_targets(catalogue: Catalogue) -> tuple[list[Target], int]:
    """Targets whose value fits Slack's option value limit, and how many do not."""
    targets = catalogue.targets()
    fits = [t for t in targets if slack_len(target_value(*t)) <= OPTION_VALUE]
    return fits, len(targets) - len(fits)


def _group_label(instance: Instance) -> str:
    return f"{instance.name} ({ENGINE_LABEL.get(instance.type, instance.type)})"


def option_groups(targets: Iterable[Target], *, more: int = 0) -> list[dict[str, Any]]:
    """One group per instance (catalogue order); `more` > 0 says matches were left out."""
    groups: dict[str, dict[str, Any]] = {}
    for instance, database in targets:
        group = groups.setdefault(
            instance.id,
            {"label": plain(_group_label(instance), OPTION_GROUP_LABEL), "options": []},
        )
        # The picked option shows alone in the closed menu, so its text names the instance too.
        group["options"].append(
            option(f"{database} · {instance.name}", target_value(instance, database))
        )
    result = list(groups.values())[:OPTION_GROUPS_MAX]
    if more and result:
        last = result[-1]
        suffix = f" (+{more:,} more: type to narrow)"
        name = truncate(last["label"]["text"], OPTION_GROUP_LABEL - len(suffix))
        last["label"] = plain(name + suffix, OPTION_GROUP_LABEL)
    return result


def _target_element(targets: list[Target]) -> dict[str, Any]:
    placeholder = plain("Choose an instance and database", PLACEHOLDER_TEXT)
    if len(targets) <= OPTIONS_MAX:
        return {
            "type": "static_select",
            "placeholder": placeholder,
            "option_groups": option_groups(targets),
        }
    # Slack caps a static menu at 100 options; larger catalogues are searched as you type.
    return {"type": "external_select", "placeholder": placeholder, "min_query_length": 0}


def _type_element(initial_type: str) -> dict[str, Any]:
    options = [option(label, str(kind)) for kind, label in TYPE_LABEL.items()]
    initial = next((o for o in options if o["value"] == initial_type), options[0])
    return {"type": "radio_buttons", "options": options, "initial_option": initial}


def _text_element(placeholder: str, max_length: int) -> dict[str, Any]:
    return {
        "type": "plain_text_input",
        "multiline": True,
        "max_length": min(max_length, PLAIN_TEXT_INPUT_MAX),
        "placeholder": plain(placeholder, PLACEHOLDER_TEXT),
    }


def _no_targets_modal() -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": SUBMIT_CALLBACK,
        "title": plain(TITLE, MODAL_TITLE),
        "close": plain("Close", MODAL_BUTTON_TEXT),
        "blocks": [
            section(
                ":warning: No databases are configured yet, so there is nothing to query."
                " Ask an admin to add instances to the dbquery catalogue."
            )
        ],
    }


def submit_modal(
    catalogue: Catalogue, *, initial_type: str = "query", rerun: RequestRecord | None = None
) -> dict[str, Any]:
    """The form; with `rerun`, filled from that request (a new request, linked to it)."""
    from bot.views.policy import run_after_input

    targets, unlisted = offerable_targets(catalogue)
    if not targets:
        return _no_targets_modal()
    target = _target_element(targets)
    query = _text_element("SELECT … or db.orders.find({ … })", PLAIN_TEXT_INPUT_MAX)
    comments = _text_element("Why you need this, a ticket link, …", COMMENTS_MAX_CHARS)
    if rerun is not None:
        _fill_from(rerun, targets, target, query, comments)
        initial_type = SubmissionType.QUERY
    blocks = [
        input_block(TARGET_BLOCK, "Target database", target),
        input_block(TYPE_BLOCK, "What to run", _type_element(initial_type)),
        input_block(
            QUERY_BLOCK,
            "Query",
            query,
            optional=True,
            hint=f"Up to {PLAIN_TEXT_INPUT_MAX:,} characters; attach anything longer as a script.",
        ),
        input_block(
            SCRIPT_BLOCK,
            "Script file",
            {"type": "file_input", "filetypes": SCRIPT_FILETYPES, "max_files": 1},
            optional=True,
            hint="A .sql script runs as one transaction; a .js file holds MongoDB shell"
            " statements. Up to 1 MB.",
        ),
        input_block(COMMENTS_BLOCK, "Comments for the approver", comments, optional=True),
        run_after_input(),
    ]
    if unlisted:
        blocks.append(
            context(
                f":information_source: {unlisted:,} target(s) are not listed: the instance id"
                f" and database name together exceed Slack's {OPTION_VALUE}-character limit."
                " Ask an admin to shorten the instance id."
            )
        )
    modal = {
        "type": "modal",
        "callback_id": SUBMIT_CALLBACK,
        "title": plain(TITLE, MODAL_TITLE),
        "submit": plain("Submit", MODAL_BUTTON_TEXT),
        "close": plain("Cancel", MODAL_BUTTON_TEXT),
        "blocks": blocks,
    }
    if rerun is not None:
        # The new request is linked to this one when it is submitted.
        modal["private_metadata"] = str(rerun.uuid)
        blocks.insert(
            0, context(f":repeat: Runs request `{rerun.short_id}` again, as a new request.")
        )
    return modal


def rerun_refusal(request: RequestRecord) -> str | None:
    """Why the form cannot be filled from `request`, or None."""
    if slack_len(request.content) > PLAIN_TEXT_INPUT_MAX:
        return (
            f"Request `{request.short_id}` is longer than the form's"
            f" {PLAIN_TEXT_INPUT_MAX:,}-character query field; attach its script again"
            " with `/dbquery`."
        )
    return None


def _fill_from(
    request: RequestRecord,
    targets: list[Target],
    target: dict[str, Any],
    query: dict[str, Any],
    comments: dict[str, Any],
) -> None:
    wanted = f"{request.instance_id}/{request.database_name}"
    for instance, database in targets:
        if target_value(instance, database) == wanted:
            target["initial_option"] = option(f"{database} · {instance.name}", wanted)
            break
    query["initial_value"] = request.content
    if request.comments:
        comments["initial_value"] = truncate(request.comments, COMMENTS_MAX_CHARS)


# --- what the modal shows while and after a slow check -----------------------------------------


def _status_modal(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": STATUS_CALLBACK,
        "title": plain(TITLE, MODAL_TITLE),
        "close": plain("Close", MODAL_BUTTON_TEXT),
        "blocks": list(blocks),
    }


def checking_modal(script_name: str | None) -> dict[str, Any]:
    """Shown while a submission is still being checked (a script, or a pasted query)."""
    what = f"*{fit_escaped(script_name, 200)}*" if script_name else "it"
    return _status_modal(
        section(f":hourglass_flowing_sand: Checking {what}; a long script takes a few seconds."),
        context(
            "You may close this window: your request card arrives in your DM once the request"
            " is stored, and a problem is reported there."
        ),
    )


def submitted_modal(request: RequestRecord) -> dict[str, Any]:
    return _status_modal(
        section(
            f":white_check_mark: Request `{request.short_id}` is stored and the approvers are"
            " asked. Your request card is in your DM with dbquery."
        )
    )


def refusal_text(message: str) -> str:
    """Why a submission was not stored (in the modal, or in a DM when the modal was closed)."""
    return (
        ":x: The request was not stored:\n"
        + code_block(message, SECTION_TEXT - 200)
        + "\nRun `/dbquery` again to send a corrected one."
    )


def refused_modal(message: str) -> dict[str, Any]:
    return _status_modal(section(refusal_text(message)))


# --- the target search ------------------------------------------------------------------------


def _matches(target: Target, needle: str) -> bool:
    instance, database = target
    haystack = f"{instance.id} {instance.name} {database} {instance.type}".lower()
    return all(word in haystack for word in needle.split())


def target_options(catalogue: Catalogue, typed: str) -> dict[str, Any]:
    """The options-load response for the external target menu: up to 100 matches, grouped."""
    needle = truncate((typed or "").strip().lower(), 200, note="")
    targets, _ = offerable_targets(catalogue)
    matches = [t for t in targets if _matches(t, needle)]
    if not matches:
        return {"options": []}
    shown = matches[:OPTIONS_MAX]
    return {"option_groups": option_groups(shown, more=len(matches) - len(shown))}


__all__ = [
    "COMMENTS_BLOCK",
    "QUERY_BLOCK",
    "SCRIPT_BLOCK",
    "STATUS_CALLBACK",
    "SUBMIT_CALLBACK",
    "TARGET_BLOCK",
    "TITLE",
    "TYPE_BLOCK",
    "checking_modal",
    "option_groups",
    "refusal_text",
    "refused_modal",
    "submit_modal",
    "submitted_modal",
    "target_options",
    "target_value",
]
