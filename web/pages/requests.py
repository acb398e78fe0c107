"""New request (with Check), my requests, one request, clone, approve and reject."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.drafts import analyse_draft
from core.errors import DbqueryError, InvalidSubmission, InvalidTransition, NotAllowed
from core.history import Filters
from core.lifecycle import FINAL_STATUSES, Status
from core.requests import Submission
from web import actions
from web.auth import CurrentUser
from web.errors import classify
from web.pages.render import page, redirect
from web.presenters import may_decide, timeline
from web.surface import surface

router = APIRouter()

LIVE_STATUSES = [s.value for s in Status if s not in FINAL_STATUSES]


@router.get("/")
def home(user: CurrentUser) -> Response:
    return redirect("/requests")


@router.get("/requests")
def my_requests(
    request: Request,
    user: CurrentUser,
    status: str = "",
    q: str = "",
    cursor: str | None = None,
) -> Response:
    filters = Filters(statuses=(status,) if status else (), text=q or None, mine=True)
    listing = surface(request).history.listing(user, filters, limit=25, cursor=cursor)
    return page(
        request,
        "requests.html",
        user,
        title="My requests",
        listing=listing,
        filters={"status": status, "q": q},
        show_requester=False,
    )


def _targets(request: Request) -> list[tuple[str, str, str]]:
    cat = surface(request).core.catalogue
    return [
        (f"{instance.id}/{database}", f"{instance.name} / {database}", instance.type.value)
        for instance, database in cat.targets()
    ]


def _form_page(request: Request, user, form: dict, status_code: int = 200, **context) -> Response:
    return page(
        request,
        "new_request.html",
        user,
        status_code=status_code,
        targets=_targets(request),
        form=form,
        **context,
    )


@router.get("/requests/new")
def new_request(request: Request, user: CurrentUser) -> Response:
    return _form_page(request, user, {"submission_type": "query"})


async def _draft(
    target: str,
    submission_type: str,
    query: str | None,
    script: UploadFile | None,
    comments: str | None,
) -> Submission:
    if submission_type == "script":
        data = await actions.read_upload(script) if script is not None else b""
        name = script.filename if script is not None else None
        return actions.script_submission(target, name, data, comments)
    return Submission(target=target, submission_type="query", query=query or "", comments=comments)


Target = Annotated[str, Form(max_length=400)]
Kind = Annotated[str, Form(max_length=10)]
QueryText = Annotated[str | None, Form(max_length=200_000)]
Script = Annotated[UploadFile | None, File()]
Comments = Annotated[str | None, Form(max_length=10_000)]


@router.post("/requests/new")
async def submit(
    request: Request,
    user: CurrentUser,
    target: Target = "",
    submission_type: Kind = "query",
    query: QueryText = None,
    script: Script = None,
    comments: Comments = None,
    check: Annotated[str | None, Form()] = None,
) -> Response:
    form = {"target": target, "submission_type": submission_type, "query": query or ""}
    form["comments"] = comments or ""
    web = surface(request)
    try:
        draft = await _draft(target, submission_type, query, script, comments)
        if check is not None:
            _instance, analysis = await run_in_threadpool(analyse_draft, web.core.requests, draft)
            return _form_page(request, user, form, analysis=analysis)
        record, _analysis = await run_in_threadpool(web.core.requests.submit, user.id, draft)
    except (InvalidSubmission, NotAllowed) as exc:
        status, _ = classify(exc)
        field = exc.field if isinstance(exc, InvalidSubmission) else None
        return _form_page(request, user, form, status, error=exc.message, error_field=field)
    return redirect(f"/requests/{record.uuid}")


@router.get("/requests/{request_id}")
def request_detail(
    request_id: str, request: Request, user: CurrentUser, error: str | None = None
) -> Response:
    web = surface(request)
    record = actions.visible_request(web, user, request_id)
    decidable = record.status == Status.PENDING and may_decide(user, record) is None
    return page(
        request,
        "request.html",
        user,
        r=record,
        analysis=actions.analysis_of(web, record),
        state=web.core.requests.policy_state(record),
        steps=timeline(record),
        result=record.result_summary(),
        has_file=web.history.result_file(record) is not None,
        decidable=decidable,
        needs_confirmation=decidable and actions.needs_confirmation(web, record),
        live=record.status in LIVE_STATUSES,
        error=error,
    )


@router.post("/requests/{request_id}/clone")
def clone(request_id: str, request: Request, user: CurrentUser) -> Response:
    record, _analysis = actions.clone(surface(request), user, request_id)
    return redirect(f"/requests/{record.uuid}")


def _decided(request: Request, user, request_id: str, decide) -> Response:
    try:
        record = decide()
    except (InvalidSubmission, InvalidTransition, NotAllowed) as exc:
        return _detail_with_error(request, user, request_id, exc)
    return redirect(f"/requests/{record.uuid}")


def _detail_with_error(request: Request, user, request_id: str, exc: DbqueryError) -> Response:
    response = request_detail(request_id, request, user, error=exc.message)
    response.status_code = classify(exc)[0]
    return response


@router.post("/requests/{request_id}/approve")
def approve(
    request_id: str,
    request: Request,
    user: CurrentUser,
    confirm: Annotated[str | None, Form()] = None,
) -> Response:
    web = surface(request)
    return _decided(
        request, user, request_id, lambda: actions.approve(web, user, request_id, bool(confirm))
    )


@router.post("/requests/{request_id}/reject")
def reject(
    request_id: str,
    request: Request,
    user: CurrentUser,
    reason: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    web = surface(request)
    return _decided(
        request, user, request_id, lambda: actions.reject(web, user, request_id, reason)
    )
