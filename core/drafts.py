"""The submit-time checks of a request without storing it (the web's "Check" button)."""

from __future__ import annotations

from core.analysis import Analysis, AnalysisError
from core.analysis_sandbox import analyse_isolated
from core.catalogue import Instance
from core.errors import InvalidSubmission
from core.requests import RequestService, Submission


def analyse_draft(requests: RequestService, submission: Submission) -> tuple[Instance, Analysis]:
    """What submit would say about this submission (target, size, analysis), storing nothing.

    The same validation as RequestService.submit, so "Check" and "Submit" never disagree.
    """
    instance, _database = requests._resolve_target(submission.target)
    content, field = requests._content_of(submission)
    try:
        analysis = analyse_isolated(
            instance.type.value,
            content,
            submission.submission_type,
            allow_server_js=instance.allow_server_js,
        )
        return instance, analysis
    except AnalysisError as exc:
        raise InvalidSubmission(field, str(exc)) from None
