"""Where a request's chat messages live (the requester's card, the approval DMs, the outcome
reply under the card).

Kept in the portal database so the messages can be updated in place after a restart, and so an
outcome delivery that is retried does not post its reply twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from db import repository as repo
from db.session import Sessions


class Purpose(StrEnum):
    CARD = "card"  # the requester's request card; outcomes are threaded under it
    APPROVAL = "approval"  # an approver's DM with the decision buttons


@dataclass(frozen=True)
class MessageRef:
    channel_id: str
    ts: str
    slack_user_id: str | None


class MessageRefs:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def save(
        self,
        request_id: int,
        purpose: Purpose,
        channel_id: str,
        ts: str,
        slack_user_id: str | None,
    ) -> None:
        with self.sessions.begin() as session:
            repo.save_slack_message(
                session,
                request_id=request_id,
                purpose=purpose.value,
                channel_id=channel_id,
                message_ts=ts,
                slack_user_id=slack_user_id,
            )

    def of(self, request_id: int, purpose: Purpose) -> list[MessageRef]:
        with self.sessions() as session:
            return [
                MessageRef(m.channel_id, m.message_ts, m.slack_user_id)
                for m in repo.slack_messages(session, request_id, purpose.value)
            ]

    def card(self, request_id: int) -> MessageRef | None:
        cards = self.of(request_id, Purpose.CARD)
        return cards[0] if cards else None

    def approvals(self, request_id: int) -> list[MessageRef]:
        return self.of(request_id, Purpose.APPROVAL)

    def outcome_reply(self, request_id: int) -> str | None:
        """The ts of the outcome reply under the card, once it was posted."""
        with self.sessions() as session:
            return repo.outcome_reply_ts(session, request_id)

    def save_outcome_reply(self, request_id: int, ts: str) -> None:
        with self.sessions.begin() as session:
            repo.save_outcome_reply(session, request_id, ts)


__all__ = ["MessageRef", "MessageRefs", "Purpose"]
