"""The options of MongoDB shell methods: which each method takes, and how each is checked.

A converter returns the value pymongo wants or raises BadOption with what was expected; the
tables map each shell option to the keyword argument of the pymongo call ("" for options the
parser handles itself: write and read concerns, read preference, maxTimeMS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo import ReturnDocument
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
)
from pymongo.write_concern import WriteConcern


class BadOption(ValueError):
    """An option's value is not what it should be; the message is what was expected."""


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadOption("true or false")
    return value


def as_count(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadOption("a non-negative integer")
    return value


def as_document(value: Any) -> dict:
    if not isinstance(value, dict):
        raise BadOption("a document {...}")
    return value


def as_documents(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadOption("[{...}, ...]")
    return value


def _as_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadOption("a name in quotes")
    return value


def as_sort(value: Any) -> list[tuple[str, Any]]:
    # pymongo wants an ordered list of (key, direction) pairs.
    if not isinstance(value, dict) or not value:
        raise BadOption("a sort document such as {field: 1}")
    for direction in value.values():
        if direction not in (1, -1) or isinstance(direction, bool):
            if not isinstance(direction, dict):
                raise BadOption("sort directions 1 or -1")
    return list(value.items())


def as_hint(value: Any) -> str | list[tuple[str, Any]]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and value:
        return list(value.items())
    raise BadOption("an index name or an index document")


_INDEX_TYPES = ("text", "2dsphere", "2d", "hashed", "columnstore")


def as_index_keys(value: Any) -> list[tuple[str, Any]]:
    if not isinstance(value, dict) or not value:
        raise BadOption("index keys such as {field: 1}")
    for direction in value.values():
        if isinstance(direction, bool) or (
            direction not in (1, -1) and direction not in _INDEX_TYPES
        ):
            raise BadOption(f"index directions 1, -1 or one of {', '.join(_INDEX_TYPES)}")
    return list(value.items())


def as_index_target(value: Any) -> str | list[tuple[str, Any]]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        return as_index_keys(value)
    raise BadOption("an index name or its keys such as {field: 1}")


def _as_return_document(value: Any) -> bool:
    if value not in ("before", "after"):
        raise BadOption('"before" or "after"')
    return ReturnDocument.AFTER if value == "after" else ReturnDocument.BEFORE


def _as_write_concern(value: Any) -> WriteConcern:
    spec = as_document(value)
    unknown = set(spec) - {"w", "j", "wtimeout", "wtimeoutMS"}
    w = spec.get("w", 1)
    if unknown or w == 0 or not (isinstance(w, str) or _is_count(w)):
        # Unacknowledged writes would leave nothing to report about what changed.
        raise BadOption("{w: 1 | 'majority' | n, j: true|false, wtimeout: ms}")
    j = spec.get("j")
    if j is not None and not isinstance(j, bool):
        raise BadOption("j: true or false")
    wtimeout = spec.get("wtimeout", spec.get("wtimeoutMS"))
    if wtimeout is not None:
        wtimeout = as_count(wtimeout)
    return WriteConcern(w=w, j=j, wtimeout=wtimeout)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_READ_CONCERN_LEVELS = ("local", "available", "majority", "linearizable", "snapshot")


def as_read_concern(value: Any) -> ReadConcern:
    level = value.get("level") if isinstance(value, dict) and set(value) == {"level"} else value
    if level not in _READ_CONCERN_LEVELS:
        raise BadOption(f"a read concern level: {', '.join(_READ_CONCERN_LEVELS)}")
    return ReadConcern(level)


_READ_PREFERENCES: dict[str, Callable[..., Any]] = {
    "primary": Primary,
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}


def read_preference(mode: Any, tags: Any = None) -> Any:
    if isinstance(mode, dict) and "mode" in mode and set(mode) <= {"mode", "tags"}:
        mode, tags = mode["mode"], mode.get("tags")
    if not isinstance(mode, str) or mode not in _READ_PREFERENCES:
        raise BadOption(f"a read preference: {', '.join(_READ_PREFERENCES)}")
    if tags is None or mode == "primary":
        return _READ_PREFERENCES[mode]()
    return _READ_PREFERENCES[mode](tag_sets=as_documents(tags))


def _as_bound(value: Any) -> Any:
    """find's min/max bounds as a document (pymongo sends them unchanged, unlike sort and
    hint); createCollection's max as a count."""
    if isinstance(value, dict) and value:
        return value
    if _is_count(value):
        return value
    raise BadOption("index bounds such as {field: value}")


def _as_batch_cursor(value: Any) -> int | None:
    if not isinstance(value, dict) or set(value) - {"batchSize"}:
        raise BadOption("{batchSize: n}")
    return as_count(value["batchSize"]) if "batchSize" in value else None


def _identity(value: Any) -> Any:
    return value


# Options that change the collection object (with_options) rather than the call.
COLLECTION_OPTIONS = {
    "writeConcern": ("write_concern", _as_write_concern),
    "readConcern": ("read_concern", as_read_concern),
    "readPreference": ("read_preference", read_preference),
}
# How each shell option's value is checked and converted, whatever the method.
OPTION_VALUES: dict[str, Callable[[Any], Any]] = {
    "allowDiskUse": as_bool,
    "arrayFilters": as_documents,
    "background": as_bool,
    "batchSize": as_count,
    "bypassDocumentValidation": as_bool,
    "capped": as_bool,
    "collation": as_document,
    "comment": _identity,
    "cursor": _as_batch_cursor,
    "default_language": _as_name,
    "dropTarget": as_bool,
    "explain": as_bool,
    "expireAfterSeconds": as_count,
    "fields": as_document,
    "hidden": as_bool,
    "hint": as_hint,
    "justOne": as_bool,
    "language_override": _as_name,
    "let": as_document,
    "limit": as_count,
    "max": _as_bound,
    "maxTimeMS": as_count,
    "min": _as_bound,
    "multi": as_bool,
    "name": _as_name,
    "new": as_bool,
    "noCursorTimeout": as_bool,
    "ordered": as_bool,
    "partialFilterExpression": as_document,
    "projection": as_document,
    "query": as_document,
    "remove": as_bool,
    "returnDocument": _as_return_document,
    "returnKey": as_bool,
    "returnNewDocument": as_bool,
    "showRecordId": as_bool,
    "size": as_count,
    "skip": as_count,
    "sort": as_sort,
    "sparse": as_bool,
    "timeseries": as_document,
    "unique": as_bool,
    "upsert": as_bool,
    "validationAction": _as_name,
    "validationLevel": _as_name,
    "validator": as_document,
    "weights": as_document,
    "wildcardProjection": as_document,
}

WRITE_OPTIONS = {"comment": "comment", "bypassDocumentValidation": "bypass_document_validation"}
CONCERN_OPTIONS = {"writeConcern": "", "maxTimeMS": ""}
MATCH_OPTIONS = {"collation": "collation", "hint": "hint", "let": "let", "comment": "comment"}
UPDATE_OPTIONS = {
    **WRITE_OPTIONS,
    **MATCH_OPTIONS,
    **CONCERN_OPTIONS,
    "upsert": "upsert",
    "arrayFilters": "array_filters",
}
REPLACE_OPTIONS = {key: value for key, value in UPDATE_OPTIONS.items() if key != "arrayFilters"}
DELETE_OPTIONS = {**MATCH_OPTIONS, **CONCERN_OPTIONS}
INSERT_ONE_OPTIONS = {**WRITE_OPTIONS, **CONCERN_OPTIONS}
INSERT_MANY_OPTIONS = {**INSERT_ONE_OPTIONS, "ordered": "ordered"}
READ_OPTIONS = {"readConcern": "", "readPreference": "", "maxTimeMS": ""}
FIND_OPTIONS = {
    "sort": "sort",
    "limit": "limit",
    "skip": "skip",
    "projection": "projection",
    "hint": "hint",
    "collation": "collation",
    "comment": "comment",
    "batchSize": "batch_size",
    "allowDiskUse": "allow_disk_use",
    "min": "min",
    "max": "max",
    "returnKey": "return_key",
    "showRecordId": "show_record_id",
    "noCursorTimeout": "no_cursor_timeout",
    "let": "let",
    **READ_OPTIONS,
}
AGGREGATE_OPTIONS = {
    "allowDiskUse": "allowDiskUse",
    "batchSize": "batchSize",
    "cursor": "batchSize",
    "collation": "collation",
    "comment": "comment",
    "hint": "hint",
    "let": "let",
    "bypassDocumentValidation": "bypassDocumentValidation",
    "writeConcern": "",
    **READ_OPTIONS,
}
COUNT_OPTIONS = {
    "limit": "limit",
    "skip": "skip",
    "hint": "hint",
    "collation": "collation",
    "comment": "comment",
    **READ_OPTIONS,
}
DISTINCT_OPTIONS = {"collation": "collation", "comment": "comment", "hint": "hint", **READ_OPTIONS}
FIND_AND_MODIFY_OPTIONS = {
    "projection": "projection",
    "sort": "sort",
    "upsert": "upsert",
    "returnDocument": "return_document",
    "returnNewDocument": "return_document",
    "arrayFilters": "array_filters",
    **MATCH_OPTIONS,
    **CONCERN_OPTIONS,
    # pymongo passes find-and-modify extras to the server as they are named.
    "bypassDocumentValidation": "bypassDocumentValidation",
}
INDEX_OPTIONS = {
    "unique": "unique",
    "background": "background",
    "name": "name",
    "partialFilterExpression": "partialFilterExpression",
    "expireAfterSeconds": "expireAfterSeconds",
    "sparse": "sparse",
    "collation": "collation",
    "hidden": "hidden",
    "weights": "weights",
    "default_language": "default_language",
    "language_override": "language_override",
    "wildcardProjection": "wildcardProjection",
}
CREATE_COLLECTION_OPTIONS = {
    "capped": "capped",
    "size": "size",
    "max": "max",
    "validator": "validator",
    "validationLevel": "validationLevel",
    "validationAction": "validationAction",
    "collation": "collation",
    "timeseries": "timeseries",
    "expireAfterSeconds": "expireAfterSeconds",
    "comment": "comment",
    "writeConcern": "",
}


@dataclass
class Options:
    kwargs: dict[str, Any] = field(default_factory=dict)
    collection: dict[str, Any] = field(default_factory=dict)
    max_time_ms: int | None = None
