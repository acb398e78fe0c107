"""The steps the API and the pages share: each turns parsed input into core calls.

Rules live in core; this module only strings core's calls together the same way for both.
"""

from __future__ import annotations

from pathlib import Path

from core.analysis import Analysis, AnalysisError
from core.analysis_sandbox import analyse_stored
from core.errors import InvalidSubmission, NotAllowed
from core.records import RequestRecord, UserRecord
from core.requests import SCRIPT_MAX_BYTES, Submission
from web.presenters import may_view
from web.surface import WebSurface

SCRIPT_EXTENSIONS = (".sql", ".js", ".txt")


def visible_request(web: WebSurface, user: UserRecord, request_id: str) -> RequestRecord:
    request = web.core.requests.find(request_id)
    reason = may_view(user, request)
    if reason:
        raise NotAllowed(f"You can't see this request: {reason}.")
    return request


def analysis_of(web: WebSurface, request: RequestRecord) -> Analysis | None:
    """The request's analysis as the approver sees it (parsed in core's sandbox, like every
    submitted text); None when it cannot be analysed any more."""
    try:
        return analyse_stored(web.core.catalogue, request)
    except AnalysisError:
        return None


def needs_confirmation(web: WebSurface, request: RequestRecord) -> bool:
    """Anything but a known read asks the approver to confirm (unknown counts as risky)."""
    analysis = analysis_of(web, request)
    return analysis is None or not analysis.read_only


def approve(web: WebSurface, user: UserRecord, request_id: str, confirmed: bool) -> RequestRecord:
    request = web.core.requests.check_may_decide(web.core.requests.find(request_id).uuid, user.id)
    if needs_confirmation(web, request) and not confirmed:
        analysis = analysis_of(web, request)
        kind = analysis.kind if analysis else "not analysable"
        raise InvalidSubmission(
            "confirm",
            f"this request is not a read ({kind}); confirm that it may run against production",
        )
    return web.core.requests.approve(request.uuid, user.id)


def reject(web: WebSurface, user: UserRecord, request_id: str, reason: str) -> RequestRecord:
    request = web.core.requests.find(request_id)
    return web.core.requests.reject(request.uuid, user.id, reason)


def clone(web: WebSurface, user: UserRecord, request_id: str):
    """A new pending request with the same target and content, submitted by `user`."""
    source = visible_request(web, user, request_id)
    return web.core.requests.submit(
        user.id,
        Submission(
            target=f"{source.instance_id}/{source.database_name}",
            submission_type=source.submission_type,
            query=source.query_content,
            script_filename=source.script_filename,
            script_content=source.script_content,
            comments=source.comments,
        ),
    )


def script_submission(
    target: str, filename: str | None, data: bytes, comments: str | None
) -> Submission:
    """A script upload as a submission: a .sql, .js or .txt file of UTF-8 text up to 1 MB."""
    name = Path(filename or "").name
    if not name:
        raise InvalidSubmission("script", "attach a script file (.sql, .js or .txt)")
    if not name.lower().endswith(SCRIPT_EXTENSIONS):
        raise InvalidSubmission("script", "attach a .sql, .js or .txt file")
    if len(data) > SCRIPT_MAX_BYTES:
        raise InvalidSubmission("script", "the script is over 1 MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSubmission("script", "the script must be UTF-8 text") from None
    return Submission(
        target=target,
        submission_type="script",
        script_filename=name[:255],
        script_content=text,
        comments=comments,
    )


async def read_upload(upload) -> bytes:
    """At most one byte more than the limit, so an oversized upload is refused, not buffered."""
    return await upload.read(SCRIPT_MAX_BYTES + 1)
