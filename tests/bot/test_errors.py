"""One mapping from what went wrong to what a Slack surface says."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from bot.errors import PORTAL_DOWN, as_message, field_errors, first_input_block
from core.errors import InvalidSubmission, InvalidTransition, NotAllowed

FIELDS = ("target", "query", "script")


def test_a_problem_goes_under_the_field_core_named_when_the_modal_has_it():
    assert field_errors(InvalidSubmission("query", "enter a query"), "x", FIELDS, "target") == {
        "query": "enter a query"
    }


def test_anything_else_goes_on_the_fallback_field():
    unknown_field = InvalidSubmission("comments_v2", "too long")
    assert field_errors(unknown_field, "x", FIELDS, "target") == {"target": "too long"}
    refused = NotAllowed("You can't decide this request.")
    assert field_errors(refused, "x", FIELDS, "target") == {"target": refused.message}


def test_long_sentences_are_cut_to_what_a_modal_shows():
    [text] = field_errors(InvalidSubmission("query", "x" * 5_000), "x", FIELDS, "t").values()
    assert len(text) <= 1_000


def test_an_unreachable_portal_says_so_and_logs_only_the_error_type(caplog):
    caplog.set_level(logging.WARNING)
    down = OperationalError("SELECT secret_column", {}, Exception("password=hunter2"))
    assert as_message(down, "deciding") == {"text": PORTAL_DOWN}
    assert "OperationalError" in caplog.text and "hunter2" not in caplog.text


def test_a_domain_error_keeps_its_own_sentence():
    raced = InvalidTransition("Already approved by Mo", "approved")
    assert as_message(raced, "approving") == {"text": "Already approved by Mo"}


def test_a_bug_is_not_turned_into_a_reply():
    with pytest.raises(KeyError):
        as_message(KeyError("x"), "anything")


def test_errors_for_a_view_go_on_its_first_input_block():
    view = {
        "blocks": [
            {"type": "section", "block_id": "intro"},
            {"type": "input", "block_id": "reason"},
            {"type": "input", "block_id": "other"},
        ]
    }
    assert first_input_block(view) == "reason"
    assert first_input_block({"blocks": [{"type": "section"}]}) is None
