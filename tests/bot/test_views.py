"""Block Kit builders against Slack's documented limits and dbquery's Slack id contract.

The limits below are written out again from Slack's reference (docs.slack.dev) instead of being
imported from bot.views.limits, so a wrong constant there fails here.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from bot.views.approval import (
    analysis_text,
    approval_message,
    decided_message,
    decision_buttons,
    reminder_text,
)
from bot.views.commands import (
    help_text,
    not_registered_message,
    pending_message,
    request_list_message,
    status_message,
)
from bot.views.home import home_view
from bot.views.limits import code_block, slack_time, truncate
from bot.views.reject import reject_modal
from bot.views.request_card import request_card
from bot.views.results import (
    needs_file,
    outcome_message,
    outcome_summary,
    render_table,
    result_file_name,
)
from bot.views.submit import (
    checking_modal,
    refusal_text,
    refused_modal,
    submit_modal,
    submitted_modal,
    target_options,
)
from core.catalogue import parse_catalogue
from tests.bot.view_fixtures import (
    AnalysisStub,
    Result,
    StatementStub,
    completed,
    decided,
    make_catalogue,
    make_request,
    make_user,
)

# --- Slack's limits, as documented ----------------------------------------------------------

BLOCKS_MAX = {"message": 50, "modal": 100, "home": 100}
MESSAGE_TEXT_MAX = 40_000
MESSAGE_BLOCKS_CHARS = 12_000  # below the ~13k where Slack answers msg_blocks_too_long
MODAL_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3_000
ID_MAX = 255
SECTION_TEXT_MAX = 3_000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2_000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
INPUT_LABEL_MAX = 2_000
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2_000
PLACEHOLDER_MAX = 150
PLAIN_TEXT_INPUT_MAX = 3_000
OPTIONS_MAX = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
GROUP_LABEL_MAX = 75
RADIO_OPTIONS_MAX = 10
CONFIRM_TITLE_MAX, CONFIRM_TEXT_MAX, CONFIRM_BUTTON_MAX = 100, 300, 30
FILE_INPUT_FILES_MAX = 10

# Slack sequences our builders may emit inside mrkdwn: user mentions and <!date> stamps.
SLACK_SEQUENCE = re.compile(
    r"<@[UW][A-Z0-9]+>|<!date\^\d+\^[^|>]*\|[^<>]*>|<https?://[^|<>\s]+\|[^<>]*>"
)
BAD_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")
QUOTE_MARK = re.compile(r"(?m)^> ")


def ulen(text: str) -> int:
    """Length in UTF-16 code units: the strictest reading of Slack's 'characters'."""
    return len(text.encode("utf-16-le")) // 2


def all_strings(node: Any) -> int:
    if isinstance(node, str):
        return ulen(node)
    if isinstance(node, dict):
        return sum(all_strings(v) for v in node.values())
    if isinstance(node, list):
        return sum(all_strings(v) for v in node)
    return 0


def check_mrkdwn(text: str, where: str) -> None:
    """Balanced code fences, and no raw <, > or & left from user text."""
    assert text.count("```") % 2 == 0, f"{where}: unbalanced code fence"
    assert not BAD_ENTITY.search(text), f"{where}: unescaped &"
    bare = QUOTE_MARK.sub("", SLACK_SEQUENCE.sub("", text))
    assert "<" not in bare and ">" not in bare, f"{where}: unescaped < or >"


def check_text(obj: Any, limit: int, where: str, *, plain_only: bool = False) -> None:
    assert isinstance(obj, dict), f"{where}: not a text object"
    assert obj.get("type") in (("plain_text",) if plain_only else ("plain_text", "mrkdwn")), where
    text = obj.get("text")
    assert isinstance(text, str) and text.strip(), f"{where}: empty text"
    assert ulen(text) <= limit, f"{where}: {ulen(text)} > {limit}"
    if obj["type"] == "mrkdwn":
        check_mrkdwn(text, where)


def check_option(opt: dict[str, Any], where: str) -> None:
    check_text(opt["text"], OPTION_TEXT_MAX, f"{where}.text")
    assert isinstance(opt["value"], str) and 0 < ulen(opt["value"]) <= OPTION_VALUE_MAX, where


def check_options(element: dict[str, Any], where: str, max_options: int) -> list[dict[str, Any]]:
    assert ("options" in element) != ("option_groups" in element), f"{where}: options xor groups"
    if "options" in element:
        options = element["options"]
    else:
        groups = element["option_groups"]
        assert 0 < len(groups) <= OPTIONS_MAX, where
        options = []
        for g, group in enumerate(groups):
            check_text(group["label"], GROUP_LABEL_MAX, f"{where}.group[{g}]", plain_only=True)
            assert 0 < len(group["options"]) <= OPTIONS_MAX, where
            options.extend(group["options"])
    assert 0 < len(options) <= max_options, f"{where}: {len(options)} options"
    for i, opt in enumerate(options):
        check_option(opt, f"{where}.option[{i}]")
    values = [o["value"] for o in options]
    assert len(values) == len(set(values)), f"{where}: duplicate option values"
    if "initial_option" in element:
        assert element["initial_option"] in options, f"{where}: initial option not offered"
    return options


def check_confirm(confirm: dict[str, Any], where: str) -> None:
    check_text(confirm["title"], CONFIRM_TITLE_MAX, f"{where}.title", plain_only=True)
    check_text(confirm["text"], CONFIRM_TEXT_MAX, f"{where}.text")
    check_text(confirm["confirm"], CONFIRM_BUTTON_MAX, f"{where}.confirm", plain_only=True)
    check_text(confirm["deny"], CONFIRM_BUTTON_MAX, f"{where}.deny", plain_only=True)
    assert confirm.get("style", "primary") in ("primary", "danger"), where


def check_element(element: dict[str, Any], surface: str, where: str) -> None:
    kind = element["type"]
    if "action_id" in element:
        assert 0 < len(element["action_id"]) <= ID_MAX, where
    if "placeholder" in element:
        check_text(element["placeholder"], PLACEHOLDER_MAX, f"{where}.placeholder", plain_only=True)
    if kind == "button":
        check_text(element["text"], BUTTON_TEXT_MAX, f"{where}.text", plain_only=True)
        assert ulen(element.get("value", "")) <= BUTTON_VALUE_MAX, where
        assert element.get("style", "primary") in ("primary", "danger"), where
        if "confirm" in element:
            check_confirm(element["confirm"], f"{where}.confirm")
    elif kind == "static_select":
        check_options(element, where, OPTIONS_MAX)
    elif kind == "external_select":
        assert isinstance(element.get("min_query_length", 3), int), where
        assert element.get("min_query_length", 3) >= 0, where
    elif kind == "radio_buttons":
        check_options(element, where, RADIO_OPTIONS_MAX)
    elif kind == "plain_text_input":
        assert 0 < element.get("max_length", PLAIN_TEXT_INPUT_MAX) <= PLAIN_TEXT_INPUT_MAX, where
    elif kind == "datetimepicker":
        initial = element.get("initial_date_time", 1_000_000_000)
        # Slack wants epoch seconds in ten digits.
        assert isinstance(initial, int) and len(str(initial)) == 10, where
    elif kind == "file_input":
        assert surface == "modal", f"{where}: file_input only works in modals"
        assert 1 <= element.get("max_files", 10) <= FILE_INPUT_FILES_MAX, where
        assert all(isinstance(t, str) for t in element.get("filetypes", [])), where
    else:
        raise AssertionError(f"{where}: unexpected element type {kind}")


def check_block(block: dict[str, Any], surface: str, where: str) -> None:
    kind = block["type"]
    if "block_id" in block:
        assert 0 < len(block["block_id"]) <= ID_MAX, where
    if kind == "section":
        assert "text" in block or "fields" in block, f"{where}: section without text"
        if "text" in block:
            check_text(block["text"], SECTION_TEXT_MAX, f"{where}.text")
        fields = block.get("fields", [])
        assert len(fields) <= FIELDS_MAX, where
        for i, field in enumerate(fields):
            check_text(field, FIELD_TEXT_MAX, f"{where}.fields[{i}]")
        if "accessory" in block:
            check_element(block["accessory"], surface, f"{where}.accessory")
    elif kind == "header":
        check_text(block["text"], HEADER_TEXT_MAX, f"{where}.text", plain_only=True)
    elif kind == "context":
        assert 0 < len(block["elements"]) <= CONTEXT_ELEMENTS_MAX, where
        for i, element in enumerate(block["elements"]):
            check_text(element, SECTION_TEXT_MAX, f"{where}.elements[{i}]")
    elif kind == "actions":
        elements = block["elements"]
        assert 0 < len(elements) <= ACTIONS_ELEMENTS_MAX, where
        ids = [e.get("action_id") for e in elements]
        assert len(ids) == len(set(ids)), f"{where}: duplicate action_id in one block"
        for i, element in enumerate(elements):
            check_element(element, surface, f"{where}.elements[{i}]")
    elif kind == "input":
        assert surface == "modal", f"{where}: input blocks belong in modals"
        check_text(block["label"], INPUT_LABEL_MAX, f"{where}.label", plain_only=True)
        if "hint" in block:
            check_text(block["hint"], INPUT_LABEL_MAX, f"{where}.hint", plain_only=True)
        check_element(block["element"], surface, f"{where}.element")
    elif kind != "divider":
        raise AssertionError(f"{where}: unexpected block type {kind}")


def assert_within_slack_limits(payload: dict[str, Any], surface: str = "message") -> None:
    """Walk a message, modal or Home view and check every count and text length Slack limits."""
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= BLOCKS_MAX[surface], f"{len(blocks)} blocks in a {surface}"
    if surface == "message":
        text = payload["text"]
        assert isinstance(text, str) and text.strip() and ulen(text) <= MESSAGE_TEXT_MAX
        check_mrkdwn(text, "text")
        assert all_strings(blocks) <= MESSAGE_BLOCKS_CHARS, f"{all_strings(blocks)} characters"
    elif surface == "modal":
        assert payload["type"] == "modal"
        check_text(payload["title"], MODAL_TITLE_MAX, "title", plain_only=True)
        for button_key in ("submit", "close"):
            if button_key in payload:
                check_text(payload[button_key], MODAL_TITLE_MAX, button_key, plain_only=True)
        if any(b["type"] == "input" for b in blocks):
            assert "submit" in payload, "a modal with inputs needs a submit button"
        assert len(payload.get("callback_id", "")) <= ID_MAX
        assert ulen(payload.get("private_metadata", "")) <= PRIVATE_METADATA_MAX
    else:
        assert payload["type"] == "home"
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), "duplicate block_id"
    for i, block in enumerate(blocks):
        check_block(block, surface, f"blocks[{i}]")


def assert_options_response(response: dict[str, Any]) -> list[dict[str, Any]]:
    """An options-load response: options or option_groups, at most 100 options in all."""
    if response.get("options") == []:
        return []
    return check_options(response, "response", OPTIONS_MAX)


def texts(payload: Any) -> str:
    """Every string in a payload, joined, to search for what a person would read."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        return "\n".join(texts(v) for v in payload.values())
    if isinstance(payload, list):
        return "\n".join(texts(v) for v in payload)
    return ""


def blocks_of(payload: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in payload["blocks"] if b["type"] == kind]


def code_bodies(text: str) -> list[str]:
    return re.findall(r"```\n(.*?)\n```", text, flags=re.S)


# --- oversized inputs ------------------------------------------------------------------------

EMOJI_LINE = "SELECT '🦄 naïve 中文 ```x``` <b> & co' AS col, `weird` FROM t; -- 👍🏽"
HUGE_QUERY = "\n".join(f"{EMOJI_LINE} /* line {i} */" for i in range(1_400))  # over 100 KB
HUGE_COMMENT = ("Please run <!channel> & <@U999> *now* ``` 🎉 " * 300)[:10_000]
MANY_TABLES = tuple(f"schema_{i}.table_with_a_long_name_{i}" for i in range(500))
MANY_WARNINGS = tuple(f"UPDATE without WHERE on table_{i} <danger> & more" for i in range(200))


def huge_request(**changes: Any):
    return make_request(
        query_content=HUGE_QUERY,
        comments=HUGE_COMMENT,
        instance_name="Instance " + "ü" * 300,
        database_name="d" * 63,
        pod_name="Pod 🚀 " * 50,
        requester=make_user("Zoë " + "Q" * 300, slack_user_id=None),
        **changes,
    )


def huge_analysis() -> AnalysisStub:
    return AnalysisStub(
        kind="write",
        statements=tuple(StatementStub(f"UPDATE t{i} SET a = 1") for i in range(300)),
        warnings=MANY_WARNINGS,
        tables=MANY_TABLES,
    )


def test_huge_query_is_over_100_kb():
    assert len(HUGE_QUERY.encode()) > 100 * 1024


# --- the validator itself ------------------------------------------------------------------


def small_message(**block: Any) -> dict[str, Any]:
    return {"text": "hi", "blocks": [{"type": "section", **block}]}


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "hi", "blocks": [{"type": "divider"}] * 51},
        small_message(text={"type": "mrkdwn", "text": "x" * 3_001}),
        small_message(text={"type": "mrkdwn", "text": "🦄" * 1_501}),
        small_message(text={"type": "mrkdwn", "text": "a ``` b"}),
        small_message(text={"type": "mrkdwn", "text": "ping <!channel>"}),
        small_message(text={"type": "mrkdwn", "text": "fish & chips"}),
        small_message(text={"type": "mrkdwn", "text": ""}),
        small_message(fields=[{"type": "mrkdwn", "text": "f"}] * 11),
        {"text": "", "blocks": [{"type": "divider"}]},
        {"text": "hi", "blocks": [{"type": "divider", "block_id": "a"}] * 2},
    ],
)
def test_the_validator_rejects_what_slack_rejects(payload):
    with pytest.raises(AssertionError):
        assert_within_slack_limits(payload)


def test_the_validator_accepts_mentions_dates_and_quotes():
    text = "<@U0ANN> at <!date^1714555800^{date_short_pretty} {time}|2024-05-01 09:30 UTC>\n> ok"
    assert_within_slack_limits(small_message(text={"type": "mrkdwn", "text": text}))


# --- limits helpers --------------------------------------------------------------------------


def test_truncate_keeps_short_text_and_marks_what_it_cuts():
    assert truncate("short", 10) == "short"
    cut = truncate("x" * 50, 10)
    assert ulen(cut) == 10 and cut.endswith("…")


def test_truncate_counts_emoji_as_two_units_and_never_splits_one():
    cut = truncate("🦄" * 20, 9)
    assert ulen(cut) <= 9 and cut.endswith("…")
    assert cut[:-1] == "🦄" * 4


def test_code_block_replaces_triple_backticks_so_the_fence_holds():
    block = code_block("a ``` b ````` c", 500)
    assert block.startswith("```\n") and block.endswith("\n```")
    assert block.count("```") == 2
    check_mrkdwn(block, "code")


def test_code_block_escapes_markup_from_user_text():
    block = code_block("SELECT * FROM t WHERE a < 1 AND b > 2 AND c = '&'", 500)
    assert "&lt; 1" in block and "&gt; 2" in block and "'&amp;'" in block


def test_code_block_of_a_100_kb_query_fits_and_says_it_was_cut():
    block = code_block(HUGE_QUERY, 2_600, what="the query")
    assert ulen(block) <= 2_600
    assert "cut to fit Slack" in block and "of 1,400 lines" in block
    check_mrkdwn(block, "code")
    assert code_bodies(block)[0].startswith("SELECT '🦄")


def test_code_block_for_empty_text_says_so():
    assert code_bodies(code_block("", 100)) == ["(empty)"]


def test_times_show_utc_fallback_and_naive_times_count_as_utc():
    stamp = slack_time(datetime(2024, 5, 1, 9, 30))
    assert stamp == "<!date^1714555800^{date_short_pretty} {time}|2024-05-01 09:30 UTC>"


# --- submit modal ---------------------------------------------------------------------------


def input_blocks(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def test_submit_modal_uses_the_contract_ids():
    view = submit_modal(make_catalogue())
    assert_within_slack_limits(view, "modal")
    assert view["callback_id"] == "submit_request"
    inputs = input_blocks(view)
    assert list(inputs) == [
        "target",
        "submission_type",
        "query",
        "script",
        "comments",
        "run_after",
    ]
    for block_id, block in inputs.items():
        assert block["element"]["action_id"] == block_id
    radio = inputs["submission_type"]["element"]
    assert radio["type"] == "radio_buttons"
    assert [o["value"] for o in radio["options"]] == ["query", "script"]
    assert radio["initial_option"]["value"] == "query"
    query = inputs["query"]
    assert query["optional"] is True
    assert query["element"]["multiline"] is True and query["element"]["max_length"] == 3_000
    script = inputs["script"]
    assert script["optional"] is True
    assert script["element"]["type"] == "file_input"
    assert script["element"]["filetypes"] == ["sql", "js", "txt"]
    assert script["element"]["max_files"] == 1
    assert inputs["comments"]["optional"] is True
    assert inputs["target"]["optional"] is False
    assert inputs["run_after"]["optional"] is True
    assert inputs["run_after"]["element"]["type"] == "datetimepicker"


def test_small_catalogue_offers_every_target_grouped_by_instance():
    catalogue = make_catalogue(instances=3, databases=2)
    target = input_blocks(submit_modal(catalogue))["target"]["element"]
    assert target["type"] == "static_select"
    assert [g["label"]["text"] for g in target["option_groups"]] == [
        "Instance 0 (PostgreSQL)",
        "Instance 1 (MongoDB)",
        "Instance 2 (PostgreSQL)",
    ]
    values = [o["value"] for g in target["option_groups"] for o in g["options"]]
    assert values == [f"{i.id}/{db}" for i, db in catalogue.targets()]
    assert values[0] == "pg-0/db0"


def test_script_can_be_preselected():
    view = submit_modal(make_catalogue(), initial_type="script")
    assert input_blocks(view)["submission_type"]["element"]["initial_option"]["value"] == "script"


def test_catalogue_of_exactly_100_targets_still_uses_a_static_menu():
    view = submit_modal(make_catalogue(instances=50, databases=2))
    assert_within_slack_limits(view, "modal")
    assert input_blocks(view)["target"]["element"]["type"] == "static_select"


def test_catalogue_of_500_targets_switches_to_a_searchable_menu():
    view = submit_modal(make_catalogue(instances=100, databases=5))
    assert_within_slack_limits(view, "modal")
    element = input_blocks(view)["target"]["element"]
    assert element["type"] == "external_select"
    assert element["min_query_length"] == 0
    assert element["action_id"] == "target"


def test_target_search_returns_at_most_100_options_and_says_more_exist():
    catalogue = make_catalogue(instances=100, databases=5)
    everything = target_options(catalogue, "")
    options = assert_options_response(everything)
    assert len(options) == 100
    assert "+400 more: type to narrow" in everything["option_groups"][-1]["label"]["text"]


def test_target_search_filters_by_instance_and_database_words():
    catalogue = make_catalogue(instances=100, databases=5)
    found = assert_options_response(target_options(catalogue, "instance 42 DB3"))
    assert [o["value"] for o in found] == ["pg-42/db3"]
    assert target_options(catalogue, "no such thing") == {"options": []}


def test_long_names_are_cut_to_option_limits():
    raw = {
        "instances": [
            {
                "id": "i" * 80,
                "name": "Ω" * 255,
                "type": "postgresql",
                "host": "h",
                "port": 1,
                "databases": ["ß" * 60, "short"],
            }
        ]
    }
    view = submit_modal(parse_catalogue(raw, "test"))
    assert_within_slack_limits(view, "modal")
    values = [
        o["value"]
        for o in target_options(parse_catalogue(raw, "test"), "")["option_groups"][0]["options"]
    ]
    assert values == ["i" * 80 + "/" + "ß" * 60, "i" * 80 + "/short"]


def test_targets_whose_value_exceeds_slack_option_limit_are_left_out_with_a_note():
    raw = {
        "instances": [
            {
                "id": "x" * 100,
                "name": "Too long",
                "type": "postgresql",
                "host": "h",
                "port": 1,
                "databases": ["d" * 60, "ok"],
            }
        ]
    }
    view = submit_modal(parse_catalogue(raw, "test"))
    assert_within_slack_limits(view, "modal")
    values = [
        o["value"]
        for g in input_blocks(view)["target"]["element"]["option_groups"]
        for o in g["options"]
    ]
    assert values == ["x" * 100 + "/ok"]
    assert "1 target(s) are not listed" in texts(blocks_of(view, "context"))


def test_empty_catalogue_explains_and_offers_nothing_to_submit():
    view = submit_modal(parse_catalogue({}, "test"))
    assert_within_slack_limits(view, "modal")
    assert "submit" not in view and not input_blocks(view)
    assert "No databases are configured" in texts(view)


# --- what the submit modal turns into during and after a slow check --------------------------


def test_checking_modal_names_the_script_and_cannot_be_submitted():
    view = checking_modal("slow.sql")
    assert_within_slack_limits(view, "modal")
    assert view["callback_id"] != "submit_request"
    assert "submit" not in view and not input_blocks(view)
    assert "Checking *slow.sql*" in texts(view)
    assert "Checking it;" in texts(checking_modal(None))


def test_checking_modal_for_a_long_file_name_with_markup_fits_and_escapes_it():
    view = checking_modal("<b>&" + "ä" * 5_000 + ".sql")
    assert_within_slack_limits(view, "modal")
    assert "&lt;b&gt;&amp;" in texts(view)


def test_submitted_modal_names_the_stored_request():
    request = make_request()
    view = submitted_modal(request)
    assert_within_slack_limits(view, "modal")
    assert "submit" not in view and not input_blocks(view)
    assert f"`{request.short_id}` is stored" in texts(view)


def test_refused_modal_shows_a_10000_character_error_in_a_code_block_that_fits():
    error = "syntax error at or near ```<EOF>``` & " + "x" * 10_000
    view = refused_modal(error)
    assert_within_slack_limits(view, "modal")
    shown = texts(view)
    assert "The request was not stored" in shown and "Run `/dbquery` again" in shown
    [body] = code_bodies(shown)
    assert body.startswith("syntax error at or near") and "&lt;EOF&gt;" in body
    assert ulen(refusal_text(error)) <= SECTION_TEXT_MAX
    assert refusal_text(error) in shown


# --- request card ---------------------------------------------------------------------------


def test_request_card_shows_target_type_query_comments_and_status():
    request = make_request()
    card = request_card(request)
    assert_within_slack_limits(card)
    body = texts(card["blocks"])
    assert "Shop PostgreSQL / shop" in body and "*Type*\nQuery" in body
    assert code_bodies(body)[0] == "SELECT id, total FROM orders WHERE total &gt; 100"
    assert "> Checking last week's big orders" in body
    assert ":hourglass_flowing_sand: Pending" in blocks_of(card, "header")[0]["text"]["text"]
    assert request.short_id in card["text"]


def test_card_and_approval_dms_link_to_the_request_page_only_when_there_is_one():
    request = make_request()
    page = f"https://dbquery.example.com/requests/{request.uuid}"
    link = f"<{page}|Open in dbquery>"
    with_link = [
        request_card(request, page_url=page),
        approval_message(request, AnalysisStub(), page_url=page),
        decided_message(decided(request, "approved"), AnalysisStub(), page_url=page),
    ]
    for built in with_link:
        assert_within_slack_limits(built)
        assert link in texts(built["blocks"])
    without = [request_card(request), approval_message(request, AnalysisStub())]
    assert all("Open in dbquery" not in texts(built["blocks"]) for built in without)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("approved", "Approved by <@U0BOB> at <!date^"),
        ("executing", ":gear: Running since"),
        ("completed", "the outcome is in the thread below"),
        ("failed", ":x: Failed at"),
        ("rejected", "> Too broad; add a date filter"),
    ],
)
def test_request_card_follows_the_status(status, expected):
    card = request_card(decided(make_request(), status))
    assert_within_slack_limits(card)
    assert expected in texts(card["blocks"])
    assert (
        "*Rejected by*" in texts(card) if status == "rejected" else "*Approved by*" in texts(card)
    )


def test_request_card_for_oversized_everything_fits_and_says_what_was_cut():
    card = request_card(huge_request())
    assert_within_slack_limits(card)
    body = texts(card["blocks"])
    assert "the query shows" in body and "cut to fit Slack" in body
    assert "&lt;!channel&gt;" in body and "<!channel>" not in body
    assert "&lt;@U999&gt;" in body


def test_a_lone_triple_backtick_in_a_comment_cannot_open_a_code_block():
    card = request_card(make_request(comments="see ``` here", query_content="SELECT '```'"))
    assert_within_slack_limits(card)
    body = texts(card["blocks"])
    assert "> see `\u200b`\u200b` here" in body
    assert code_bodies(body) == ["SELECT '`\u200b`\u200b`'"]


def test_script_card_shows_the_file_name_and_its_first_lines():
    script = "\n".join(f"UPDATE t SET a = {i};" for i in range(350))
    request = make_request(
        submission_type="script",
        query_content=None,
        script_filename="fix`orders`.sql",
        script_content=script,
    )
    card = request_card(request)
    assert_within_slack_limits(card)
    body = texts(card["blocks"])
    assert "Script `fix'orders'.sql`" in body
    assert code_bodies(body)[0].splitlines()[-1] == "UPDATE t SET a = 19;"
    assert "First 20 of 350 lines shown" in body


# --- approval DM ----------------------------------------------------------------------------


def test_approval_message_buttons_follow_the_contract():
    request = make_request()
    message = approval_message(request, AnalysisStub(kind="read"))
    assert_within_slack_limits(message)
    (buttons,) = blocks_of(message, "actions")
    approve, reject = buttons["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        "approve_request",
        str(request.uuid),
        "primary",
    )
    assert (reject["action_id"], reject["value"], reject["style"]) == (
        "reject_request",
        str(request.uuid),
        "danger",
    )
    assert "confirm" not in approve, "a read needs no confirmation"
    assert "<@U0ANN> asks to run a *read-only* query" in texts(message["blocks"])
    assert "an *unanalysed* query" in texts(approval_message(request, None)["blocks"])


@pytest.mark.parametrize(
    ("analysis", "title"),
    [
        (AnalysisStub(kind="write", warnings=("UPDATE without WHERE",)), "Approve a write?"),
        (AnalysisStub(kind="ddl"), "Approve a schema change?"),
        (None, "Approve without an analysis?"),
    ],
)
def test_anything_but_a_read_asks_the_approver_to_confirm(analysis, title):
    message = approval_message(make_request(), analysis)
    assert_within_slack_limits(message)
    approve = blocks_of(message, "actions")[0]["elements"][0]
    assert approve["confirm"]["title"]["text"] == title
    assert "It runs as soon as you approve." in approve["confirm"]["text"]["text"]


def test_approval_message_shows_the_analysis():
    analysis = AnalysisStub(
        kind="write",
        statements=(StatementStub("UPDATE orders SET a = 1"), StatementStub("SELECT 1")),
        warnings=("UPDATE without WHERE changes every row",),
        tables=("orders", "customers"),
    )
    body = texts(approval_message(make_request(), analysis)["blocks"])
    assert "*Analysis:* :pencil2: writes data · 2 statements" in body
    assert "*Tables:* `orders`, `customers`" in body
    assert ":warning: UPDATE without WHERE changes every row" in body


def test_oversized_approval_message_fits_and_marks_every_cut():
    message = approval_message(huge_request(), huge_analysis())
    assert_within_slack_limits(message)
    body = texts(message["blocks"])
    assert "more tables" in body and "more warnings" in body
    assert "cut to fit Slack" in body
    assert "300 statements" in body
    confirm = blocks_of(message, "actions")[0]["elements"][0]["confirm"]
    assert confirm["text"]["text"].endswith("…")


def test_decided_message_drops_the_buttons_and_names_the_decider():
    request = make_request()
    approved = decided_message(decided(request, "approved"), AnalysisStub())
    assert_within_slack_limits(approved)
    assert not blocks_of(approved, "actions")
    assert "Approved by <@U0BOB> at <!date^1714558500^" in texts(approved["blocks"])
    assert "approved by Bob Boss" in approved["text"]

    rejected = decided_message(decided(request, "rejected"), AnalysisStub())
    assert_within_slack_limits(rejected)
    assert not blocks_of(rejected, "actions")
    assert "Rejected by <@U0BOB>" in texts(rejected["blocks"])
    assert "> Too broad; add a date filter" in texts(rejected["blocks"])


def test_decided_message_with_a_10000_character_reason_fits():
    request = decided(huge_request(), "rejected", rejection_reason="No. " * 2_500 + "<!here>")
    message = decided_message(request, huge_analysis())
    assert_within_slack_limits(message)
    assert "cut to fit Slack" in texts(message["blocks"])


def test_reminders_name_the_request_and_escalation_speaks_to_admins():
    request = make_request(requester=make_user("Ann <script>"))
    plain_reminder = reminder_text(request, escalated=False)
    escalation = reminder_text(request, escalated=True)
    assert request.short_id in plain_reminder and "waiting for your decision" in plain_reminder
    assert "As an admin you can approve or reject it" in escalation
    for text in (plain_reminder, escalation):
        check_mrkdwn(text, "reminder")
        assert "Ann &lt;script&gt;" in text


def test_analysis_text_without_an_analysis_warns_the_approver():
    assert "not available" in analysis_text(None)


# --- reject modal ---------------------------------------------------------------------------


def test_reject_modal_follows_the_contract():
    request = make_request()
    view = reject_modal(request)
    assert_within_slack_limits(view, "modal")
    assert view["callback_id"] == "reject_request"
    assert view["private_metadata"] == str(request.uuid)
    reason = input_blocks(view)["reason"]
    assert reason["optional"] is False
    assert reason["element"]["action_id"] == "reason"
    assert reason["element"]["multiline"] is True


def test_reject_modal_for_a_huge_request_fits():
    view = reject_modal(huge_request())
    assert_within_slack_limits(view, "modal")
    assert "cut to fit Slack" in texts(view["blocks"])


# --- outcome replies ------------------------------------------------------------------------


def read_statement(rows: int) -> dict[str, Any]:
    return {"index": 1, "text": "SELECT id, total FROM orders", "kind": "read", "rows": rows}


def test_small_result_is_an_inline_table():
    result = Result(
        columns=["id", "total", "note"],
        preview=[[1, 10.5, "a\nb"], [2, None, {"k": [1, 2]}]],
        row_count=2,
        statements=[read_statement(2)],
    )
    request = completed(make_request(), result)
    assert needs_file(request) is False
    message = outcome_message(request, file_attached=False)
    assert_within_slack_limits(message)
    (table,) = code_bodies(texts(message["blocks"]))
    assert table.splitlines() == [
        "id | total | note",
        "---+-------+--------------",
        "1  | 10.5  | a↵b",
        '2  | NULL  | {"k": [1, 2]}',
    ]
    assert "attached" not in texts(message["blocks"])
    assert message["text"] == f"Request {request.short_id} completed: 2 rows"


def test_21_rows_need_a_file_and_the_reply_says_it_is_attached():
    rows = [[i, f"name {i}"] for i in range(20)]
    result = Result(
        columns=["id", "name"],
        preview=rows,
        row_count=5_000,
        file_format="csv",
        statements=[read_statement(5_000)],
    )
    request = completed(make_request(), result)
    assert needs_file(request) is True
    message = outcome_message(request, file_attached=True)
    assert_within_slack_limits(message)
    body = texts(message["blocks"])
    assert "*First 20 rows of 5,000*" in body
    assert ":paperclip: Full result (5,000 rows) attached as CSV." in body


def test_mongodb_results_are_attached_as_json_lines():
    rows = [[{"_id": i, "doc": "x" * 150}] for i in range(20)]
    result = Result(columns=["document"], preview=rows, row_count=30, file_format="jsonl")
    request = completed(make_request(database_type="mongodb"), result)
    message = outcome_message(request, file_attached=True)
    assert_within_slack_limits(message)
    assert "attached as JSON lines" in texts(message["blocks"])


def test_without_the_file_the_reply_does_not_pretend_it_is_attached():
    result = Result(columns=["id"], preview=[[i] for i in range(20)], row_count=99)
    message = outcome_message(completed(make_request(), result), file_attached=False)
    body = texts(message["blocks"])
    assert "attached" not in body and "Only the preview is shown; 99 rows in all." in body


def test_a_1000_column_result_falls_back_to_the_first_row_as_a_list():
    columns = [f"column_{i}" for i in range(1_000)]
    result = Result(columns=columns, preview=[list(range(1_000))], row_count=1, file_format="csv")
    request = completed(make_request(), result)
    assert render_table(columns, result.preview, 2_500) is None
    assert needs_file(request) is True
    message = outcome_message(request, file_attached=True)
    assert_within_slack_limits(message)
    body = texts(message["blocks"])
    assert "1,000 columns, too wide for a table" in body
    assert code_bodies(body)[0].startswith("column_0: 0\ncolumn_1: 1")
    assert "cut to fit Slack" in body and "attached as CSV" in body


def test_render_table_aligns_wide_characters_and_cuts_long_cells():
    table = render_table(["名前", "n"], [["中文", 1], ["ab", 2], ["x" * 100, 3]], 2_500)
    assert table is not None
    lines = table.splitlines()
    assert lines[0] == "名前" + " " * 36 + " | n"
    assert lines[2] == "中文" + " " * 36 + " | 1"
    assert lines[4].startswith("x" * 39 + "…")
    assert render_table(["a"], [["y" * 30]] * 200, 2_500) is None


def test_an_empty_result_names_its_columns_and_needs_no_file():
    result = Result(columns=[f"c{i}" for i in range(1_000)], row_count=0)
    request = completed(make_request(), result)
    assert needs_file(request) is False
    message = outcome_message(request, file_attached=False)
    assert_within_slack_limits(message)
    body = texts(message["blocks"])
    assert "*No rows.* Columns: c0, c1, c2" in body and body.rstrip().endswith("…")


def test_a_completed_request_without_a_summary_says_so():
    request = decided(make_request(), "completed")
    message = outcome_message(request, file_attached=False)
    assert_within_slack_limits(message)
    assert "No result summary was recorded." in texts(message["blocks"])


def test_row_cap_is_stated():
    result = Result(
        columns=["id"],
        preview=[[i] for i in range(20)],
        row_count=100_000,
        truncated=True,
        file_format="csv",
    )
    message = outcome_message(completed(make_request(), result), file_attached=True)
    assert_within_slack_limits(message)
    assert "Stopped at the row cap of 100,000 rows" in texts(message["blocks"])


def test_writes_show_counts_per_statement():
    statements = [
        {"index": 1, "text": "UPDATE orders SET a = 1 WHERE b < 2", "kind": "write", "affected": 3},
        {"index": 2, "text": "DELETE FROM carts", "kind": "write", "affected": 1},
        {
            "index": 3,
            "text": "db.x.updateMany({}, {$set: {a: 1}})",
            "kind": "write",
            "affected": 2,
            "detail": "matched 3, modified 2",
        },
    ]
    result = Result(statements=statements, notes=["ran in one transaction"])
    message = outcome_message(completed(make_request(), result), file_attached=False)
    assert_within_slack_limits(message)
    body = texts(message["blocks"])
    assert (
        ":white_check_mark: 1. `UPDATE orders SET a = 1 WHERE b &lt; 2` — 3 rows affected" in body
    )
    assert "2. `DELETE FROM carts` — 1 row affected" in body
    assert "— 2 rows affected; matched 3, modified 2" in body
    assert "ran in one transaction" in body


def test_a_script_of_300_statements_lists_what_fits_and_counts_the_rest():
    statements = [
        {"index": i, "text": f"UPDATE t SET a = {i} -- {'🦄' * 40}", "kind": "write", "affected": i}
        for i in range(1, 301)
    ]
    message = outcome_message(
        completed(make_request(), Result(statements=statements)), file_attached=False
    )
    assert_within_slack_limits(message)
    assert re.search(r"… and \d+ more statements", texts(message["blocks"]))


def test_failure_shows_the_database_error_in_a_code_block():
    error = 'ERROR: syntax error at or near "```"\nLINE 1: SELEC <x> & y\n' + "detail " * 2_000
    request = decided(make_request(), "failed", execution_error=error)
    message = outcome_message(request, file_attached=False)
    assert_within_slack_limits(message)
    body = texts(message["blocks"])
    assert code_bodies(body)[0].startswith('ERROR: syntax error at or near "`\u200b`\u200b`"')
    assert "LINE 1: SELEC &lt;x&gt; &amp; y" in body
    assert "cut to fit Slack" in body
    assert message["text"].startswith(f"Request {request.short_id} failed: ERROR: syntax error")


def test_rejection_reply_gives_the_reason():
    request = decided(make_request(), "rejected")
    message = outcome_message(request, file_attached=False)
    assert_within_slack_limits(message)
    assert "> Too broad; add a date filter" in texts(message["blocks"])
    assert "rejected: Too broad" in message["text"]


# --- Home tab -------------------------------------------------------------------------------


def many_requests(count: int, **changes: Any) -> list:
    return [make_request(id=i, uuid=uuid.uuid4(), **changes) for i in range(count)]


def test_home_for_a_developer_lists_their_requests_without_buttons():
    user = make_user()
    mine = [make_request(), decided(make_request(uuid=uuid.uuid4()), "rejected")]
    view = home_view(user, mine, [], {})
    assert_within_slack_limits(view, "home")
    assert not blocks_of(view, "actions")
    body = texts(view["blocks"])
    assert "Waiting for your decision" not in body
    assert mine[0].short_id in body and "Rejected by <@U0BOB>: Too broad" in body


def test_home_for_a_manager_uses_the_same_buttons_as_the_dm():
    manager = make_user("Bob Boss", role="manager", slack_user_id="U0BOB")
    request = make_request()
    analysis = AnalysisStub(kind="write")
    view = home_view(manager, [], [request], {request.uuid: analysis})
    assert_within_slack_limits(view, "home")
    (buttons,) = blocks_of(view, "actions")
    assert buttons == decision_buttons(request, analysis)
    assert buttons == blocks_of(approval_message(request, analysis), "actions")[0]


def test_home_with_200_waiting_requests_fits_100_blocks_and_says_how_many_more():
    manager = make_user("Bob Boss", role="admin", slack_user_id="U0BOB")
    waiting = many_requests(200, query_content=HUGE_QUERY, comments=HUGE_COMMENT)
    analyses = {str(r.uuid): huge_analysis() for r in waiting}
    mine = many_requests(30)
    view = home_view(manager, mine, waiting, analyses)
    assert_within_slack_limits(view, "home")
    assert len(view["blocks"]) <= 100
    shown = len(blocks_of(view, "actions"))
    assert 0 < shown < 200
    body = texts(view["blocks"])
    assert f"… and {200 - shown:,} more waiting" in body
    assert "Your recent requests" in body
    assert sum(r.short_id in body for r in mine) >= 10
    for actions_block in blocks_of(view, "actions"):
        assert "confirm" in actions_block["elements"][0]


def test_home_shows_each_request_once():
    manager = make_user("Bob Boss", role="manager", slack_user_id="U0BOB")
    request = make_request()
    view = home_view(manager, [], [request, request], {})
    assert_within_slack_limits(view, "home")
    assert len(blocks_of(view, "actions")) == 1


def test_home_with_500_of_my_requests_keeps_a_note():
    view = home_view(make_user(), many_requests(500), [], {})
    assert_within_slack_limits(view, "home")
    assert "more requests (`/dbquery list`)" in texts(view["blocks"])


def test_inactive_managers_see_no_buttons():
    manager = make_user("Bob Boss", role="manager", is_active=False)
    view = home_view(manager, [], [make_request()], {})
    assert not blocks_of(view, "actions")


# --- /dbquery answers -----------------------------------------------------------------------


def test_help_lists_the_subcommands():
    text = help_text()
    for command in (
        "`/dbquery`",
        "/dbquery list",
        "/dbquery status",
        "/dbquery pending",
        "/dbquery rerun",
    ):
        assert command in text
    check_mrkdwn(text, "help")


def test_request_list_of_200_fits_a_message_with_a_note():
    message = request_list_message(many_requests(200, query_content=HUGE_QUERY))
    assert_within_slack_limits(message)
    assert re.search(r"… and \d+ more requests", texts(message["blocks"]))


def test_empty_request_list_says_so():
    message = request_list_message([])
    assert_within_slack_limits(message)
    assert message["text"] == "No requests found."


def test_status_of_a_completed_request_summarises_the_result():
    statements = [{"index": 1, "text": "DELETE FROM carts", "kind": "write", "affected": 7}]
    request = completed(make_request(), Result(statements=statements, elapsed_ms=1_500))
    message = status_message(request)
    assert_within_slack_limits(message)
    assert "Completed: 7 rows affected, in 1.5 s." in texts(message["blocks"])


def test_status_of_a_failed_request_shows_the_error():
    request = decided(huge_request(), "failed", execution_error="boom <x> " * 2_000)
    message = status_message(request)
    assert_within_slack_limits(message)
    assert "boom &lt;x&gt;" in texts(message["blocks"])


def test_pending_list_of_200_uses_the_dm_buttons_and_fits_a_message():
    waiting = many_requests(200, query_content=HUGE_QUERY, comments=HUGE_COMMENT)
    analyses = {r.uuid: AnalysisStub(kind="read") for r in waiting}
    message = pending_message(waiting, analyses)
    assert_within_slack_limits(message)
    actions_blocks = blocks_of(message, "actions")
    assert actions_blocks[0] == decision_buttons(waiting[0], analyses[waiting[0].uuid])
    assert f"… and {200 - len(actions_blocks):,} more waiting" in texts(message["blocks"])


def test_nothing_pending_says_so():
    message = pending_message([], {})
    assert_within_slack_limits(message)
    assert "Nothing is waiting" in message["text"]


def test_not_registered_message_escapes_the_text():
    message = not_registered_message("You are not registered <@U1> & inactive")
    assert_within_slack_limits(message)
    assert ":warning: You are not registered &lt;@U1&gt; &amp; inactive" in texts(message)


def test_every_builder_handles_unicode_and_emoji_names():
    request = replace(
        make_request(),
        instance_name="Prod 🐘 База",
        database_name="商店",
        requester=make_user("José 🙂", slack_user_id=None),
    )
    for payload in (
        request_card(request),
        approval_message(request, AnalysisStub()),
        outcome_message(decided(request, "rejected"), file_attached=False),
    ):
        assert_within_slack_limits(payload)
        assert "Prod 🐘 База / 商店" in texts(payload)
    assert "José 🙂" in texts(approval_message(request, AnalysisStub())["blocks"])


def test_a_compressed_result_gives_its_uncompressed_size_and_row_count():
    summary = {
        "columns": ["id"],
        "preview": [[i] for i in range(20)],
        "row_count": 1_000_000,
        "file_format": "csv",
        "compressed": True,
        "content_bytes": 96 * 1024 * 1024,
        "file_bytes": 14 * 1024 * 1024,
    }
    request = decided(make_request(), "completed", execution_result=json.dumps(summary))
    message = outcome_message(request, file_attached=True)
    assert_within_slack_limits(message)
    assert (
        "Full result (1,000,000 rows, 96 MB uncompressed) attached as gzip-compressed CSV (14 MB)"
        in texts(message["blocks"])
    )
    assert result_file_name(request, [".csv", ".gz"]).endswith(".csv.gz")


def test_a_result_cut_at_the_upload_limit_says_why():
    summary = {
        "columns": ["id"],
        "preview": [[i] for i in range(20)],
        "row_count": 7_654_321,
        "truncated": True,
        "truncation": "cut at Slack's upload limit of 1 GB for one file",
        "file_format": "csv",
    }
    request = decided(make_request(), "completed", execution_result=json.dumps(summary))
    message = outcome_message(request, file_attached=True)
    assert_within_slack_limits(message)
    assert (
        "Cut at Slack's upload limit of 1 GB for one file; the result holds the first"
        " 7,654,321 rows." in texts(message["blocks"])
    )
    assert "upload limit of 1 GB" in outcome_summary(request)
