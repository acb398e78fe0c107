"""The dashboard: pictures of what the signed-in person may see over the last 30 days."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web.auth import CurrentUser
from web.charts import STATUS_COLOURS, bar_list_chart, per_day_chart
from web.pages.render import page
from web.surface import surface

router = APIRouter()


def _minutes(seconds: float | None) -> float:
    return round((seconds or 0) / 60, 1)


@router.get("/dashboard")
def dashboard(request: Request, user: CurrentUser, days: int = 30) -> Response:
    days = max(7, min(days, 90))
    stats = surface(request).history.stats(user, days=days)
    d, e = stats.decision, stats.execution
    charts = [
        bar_list_chart(
            f"Time to decision (minutes, {d.count} decided)",
            [("p50", _minutes(d.p50_s)), ("p90", _minutes(d.p90_s))],
            " min",
        ),
        bar_list_chart(
            f"Execution time (seconds, {e.count} run)",
            [("p50", round(e.p50_s or 0, 2)), ("p90", round(e.p90_s or 0, 2))],
            " s",
        ),
        bar_list_chart("Busiest instances", [(n, c) for n, c in stats.busiest_instances]),
        bar_list_chart("Busiest requesters", [(n, c) for n, c in stats.busiest_requesters]),
    ]
    return page(
        request,
        "dashboard.html",
        user,
        days=days,
        stats=stats,
        per_day=per_day_chart(stats),
        charts=charts,
        colours=STATUS_COLOURS,
    )
