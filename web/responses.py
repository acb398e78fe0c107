"""JSON answers rendered by orjson.

orjson writes datetimes as ISO 8601 (exactly as `datetime.isoformat()` does) and UUIDs as their
canonical text, so presenters hand over the values themselves; for a page of fifty requests it
is several times faster than the standard library's encoder.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
