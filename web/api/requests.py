"""Requests: submit a query or a script, analyse a draft, list, read, download, clone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.drafts import analyse_draft
from core.errors import InvalidSubmission, NotFound
from core.history import Filters
from core.requests import Submission
from web import actions
from web.auth import CurrentUser
from web.presenters import analysis_json, policy_json, request_json
from web.responses import FastJSONResponse
from web.surface import surface

router = APIRouter(prefix="/requests", tags=["requests"])


class QueryIn(BaseModel):
    target: str = Field(max_length=400, description="<instance_id>/<database>")
    query: str = Field(max_length=200_000)
    comments: str | None = Field(default=None, max_length=10_000)


def _submitted(result) -> dict:
    record, analysis = result
    return {"request": request_json(record, full=True), "analysis": analysis_json(analysis)}


@router.post("", status_code=status.HTTP_201_CREATED)
def submit_query(body: QueryIn, user: CurrentUser, request: Request) -> dict:
    submission = Submission(
        target=body.target, submission_type="query", query=body.query, comments=body.comments
    )
    return _submitted(surface(request).core.requests.submit(user.id, submission))


@router.post("/script", status_code=status.HTTP_201_CREATED)
async def submit_script(
    user: CurrentUser,
    request: Request,
    target: Annotated[str, Form(max_length=400)],
    script: Annotated[UploadFile, File(description=".sql, .js or .txt, up to 1 MB")],
    comments: Annotated[str | None, Form(max_length=10_000)] = None,
) -> dict:
    data = await actions.read_upload(script)
    submission = actions.script_submission(target, script.filename, data, comments)
    result = await run_in_threadpool(surface(request).core.requests.submit, user.id, submission)
    return _submitted(result)


class DraftIn(BaseModel):
    target: str = Field(max_length=400)
    submission_type: Literal["query", "script"] = "query"
    query: str | None = Field(default=None, max_length=200_000)
    script_filename: str | None = Field(default=None, max_length=255)
    script_content: str | None = Field(default=None, max_length=1_100_000)


@router.post("/analyze")
def analyze(body: DraftIn, user: CurrentUser, request: Request) -> dict:
    """The analysis submit would show, without storing anything."""
    submission = Submission(
        target=body.target,
        submission_type=body.submission_type,
        query=body.query,
        script_filename=body.script_filename,
        script_content=body.script_content,
    )
    instance, analysis = analyse_draft(surface(request).core.requests, submission)
    return {"target": instance.id, "analysis": analysis_json(analysis)}


def parse_filters(
    status_: list[str],
    type_: str | None,
    database_type: str | None,
    instance: str | None,
    pod: str | None,
    requester: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    q: str | None,
    mine: bool,
) -> Filters:
    for name, moment in (("from", created_from), ("to", created_to)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidSubmission(name, f"{name} needs a time zone (e.g. 2024-01-31T00:00:00Z)")
    return Filters(
        statuses=tuple(s for s in status_ if s),
        submission_type=type_ or None,
        database_type=database_type or None,
        instance_id=instance or None,
        pod_id=pod or None,
        requester=requester or None,
        created_from=created_from,
        created_to=created_to,
        text=q or None,
        mine=mine,
    ).check()


@router.get("")
async def list_requests(
    user: CurrentUser,
    request: Request,
    status_: Annotated[list[str], Query(alias="status")] = [],  # noqa: B006
    type_: Annotated[str | None, Query(alias="type")] = None,
    database_type: str | None = None,
    instance: str | None = None,
    pod: str | None = None,
    requester: Annotated[str | None, Query(max_length=255)] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    mine: bool = False,
    sort: Literal["newest", "oldest"] = "newest",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> FastJSONResponse:
    """Requests the caller may see, newest first, a page at a time (follow `next_cursor`)."""
    filters = parse_filters(
        status_, type_, database_type, instance, pod, requester, created_from, created_to, q, mine
    )
    web = surface(request)
    page = await web.run(
        lambda: web.history.listing(
            user, filters, oldest_first=sort == "oldest", limit=limit, cursor=cursor
        )
    )
    # Rendered by orjson, skipping FastAPI's generic encoder: the costliest step of a listing.
    return FastJSONResponse(
        {"requests": [request_json(r) for r in page.items], "next_cursor": page.next_cursor}
    )


@router.get("/{request_id}")
def get_request(request_id: str, user: CurrentUser, request: Request) -> dict:
    web = surface(request)
    record = actions.visible_request(web, user, request_id)
    return {
        **request_json(record, full=True),
        "policy": policy_json(web.core.requests.policy_state(record)),
    }


@router.get("/{request_id}/result")
def download_result(request_id: str, user: CurrentUser, request: Request) -> FileResponse:
    web = surface(request)
    record = actions.visible_request(web, user, request_id)
    path = web.history.result_file(record)
    if path is None:
        raise NotFound("this request has no result file (it has not run, or it returned no rows)")
    return FileResponse(path, filename=f"dbquery-{record.short_id}{''.join(path.suffixes)}")


@router.post("/{request_id}/clone", status_code=status.HTTP_201_CREATED)
def clone_request(request_id: str, user: CurrentUser, request: Request) -> dict:
    return _submitted(actions.clone(surface(request), user, request_id))
