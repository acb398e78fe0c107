"""The targets a person may submit to: instances and their databases."""

from __future__ import annotations

from fastapi import APIRouter, Request

from web.auth import CurrentUser
from web.surface import surface

router = APIRouter(prefix="/catalogue", tags=["catalogue"])


@router.get("")
def catalogue(user: CurrentUser, request: Request) -> dict:
    cat = surface(request).core.catalogue
    return {
        "instances": [
            {
                "id": instance.id,
                "name": instance.name,
                "type": instance.type.value,
                "databases": list(instance.databases),
            }
            for instance in cat.instances
        ],
        "pods": [{"id": pod.id, "name": pod.name} for pod in cat.pods],
    }
