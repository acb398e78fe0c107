"""The result file both executors stream to: plain, then gzip past a size; capped in bytes."""

from __future__ import annotations

import base64
import gzip
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from core.catalogue import Instance, parse_catalogue
from core.errors import ConfigError
from core.executors.base import Connection, Job
from core.executors.mongo import execute_mongo
from core.executors.results import MB, ExecutionResult, ResultLimits, ResultWriter
from core.secrets import NO_CREDENTIALS, connection_for
from core.settings import load_settings


def lines(count: int, width: int = 60, seed: int = 7) -> list[bytes]:
    """Records that gzip cannot shrink much (random base64), one per line."""
    rng = random.Random(seed)
    return [base64.b64encode(rng.randbytes(width * 3 // 4)) + b"\n" for _ in range(count)]


def write_all(writer: ResultWriter, records: list[bytes]) -> int:
    written = 0
    for record in records:
        if not writer.write(record):
            break
        written += 1
    return written


def test_small_result_stays_plain(tmp_path: Path) -> None:
    records = lines(100)
    writer = ResultWriter(tmp_path / "r.csv", "csv", ResultLimits())
    assert write_all(writer, records) == 100
    written = writer.commit()
    assert (written.path, written.compressed, written.truncation) == (
        tmp_path / "r.csv",
        False,
        None,
    )
    assert written.path.read_bytes() == b"".join(records)
    assert written.content_bytes == written.file_bytes == len(b"".join(records))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_result_past_the_threshold_is_recompressed_and_continues_in_gzip(tmp_path: Path) -> None:
    records = [f"{n},row number {n}\n".encode() for n in range(200_000)]
    writer = ResultWriter(tmp_path / "r.csv", "csv", ResultLimits(compress_over_bytes=1 * MB))
    assert write_all(writer, records) == len(records)
    written = writer.commit()
    assert written.compressed and written.path == tmp_path / "r.csv.gz"
    content = b"".join(records)
    assert gzip.decompress(written.path.read_bytes()) == content
    assert written.content_bytes == len(content)
    assert written.file_bytes == written.path.stat().st_size < len(content) / 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv.gz"]


def test_byte_cap_keeps_whole_records(tmp_path: Path) -> None:
    records = lines(1_000)
    writer = ResultWriter(tmp_path / "r.jsonl", "jsonl", ResultLimits(max_result_bytes=10_000))
    kept = write_all(writer, records)
    written = writer.commit()
    assert kept == 10_000 // len(records[0])
    assert written.path.read_bytes() == b"".join(records[:kept])
    assert written.truncation == "stopped at the result size cap of 10,000 bytes"


def test_compressed_file_is_cut_below_the_upload_limit(tmp_path: Path) -> None:
    records = lines(150_000)  # about 9 MB that gzip shrinks by a quarter at most
    limits = ResultLimits(compress_over_bytes=100_000, upload_limit_bytes=3 * MB)
    writer = ResultWriter(tmp_path / "r.csv", "csv", limits)
    kept = write_all(writer, records)
    written = writer.commit()
    assert 0 < kept < len(records)
    assert written.truncation == "cut at Slack's upload limit of 3 MB for one file"
    assert written.file_bytes <= 3 * MB
    # Cut with little to spare: the file is most of the allowance.
    assert written.file_bytes > 3 * MB - 2 * MB
    assert gzip.decompress(written.path.read_bytes()) == b"".join(records[:kept])


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path / "r.csv", "csv", ResultLimits(compress_over_bytes=1_000))
    write_all(writer, lines(1_000))
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_summary_records_compression_and_sizes(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path / "r.csv", "csv", ResultLimits(compress_over_bytes=1_000))
    write_all(writer, lines(1_000))
    result = ExecutionResult()
    result.attach_file(writer.commit(), row_count=999)
    summary = json.loads(result.summary_json())
    assert summary["compressed"] is True
    assert summary["row_count"] == 999
    assert summary["content_bytes"] == 61_000
    assert summary["file_bytes"] == result.file_path.stat().st_size
    assert summary["truncation"] is None


# --- MongoDB results go through the same writer ---------------------------------------------


@pytest.fixture
def mongo_collection(mongo_server: tuple[str, int]) -> tuple[Connection, str]:
    host, port = mongo_server
    database, collection = f"dbq_results_{uuid.uuid4().hex[:8]}", "docs"
    with MongoClient(host, port, serverSelectionTimeoutMS=5000) as client:
        client[database][collection].insert_many(
            [{"n": n, "text": f"document {n} " + "abc" * 20} for n in range(20_000)]
        )
    return Connection(host=host, port=port, database=database), collection


def test_mongo_result_is_compressed_and_capped_like_postgres(
    mongo_collection: tuple[Connection, str], tmp_path: Path
) -> None:
    conn, collection = mongo_collection
    job = Job(
        request_uuid=str(uuid.uuid4()),
        submission_type="query",
        content=f"db.{collection}.find({{}}, {{_id: 0}}).sort({{n: 1}})",
        out_dir=tmp_path,
        limits=ResultLimits(compress_over_bytes=100_000, max_result_bytes=1 * MB),
    )
    result = execute_mongo(conn, job)
    assert result.file_path is not None and result.file_path.name.endswith(".jsonl.gz")
    assert result.compressed and result.truncated
    assert result.truncation == "stopped at the result size cap of 1 MB"
    content = gzip.decompress(result.file_path.read_bytes()).decode().splitlines()
    assert len(content) == result.row_count == result.statements[0].rows
    assert json.loads(content[-1])["n"] == result.row_count - 1
    assert result.content_bytes <= 1 * MB


# --- where the limits come from ---------------------------------------------------------------


def _instance(**fields: Any) -> Instance:
    raw = {
        "pods": [],
        "instances": [
            {
                "id": "pg",
                "name": "PG",
                "type": "postgresql",
                "host": "127.0.0.1",
                "port": 5432,
                "databases": ["shop"],
                **fields,
            }
        ],
    }
    return parse_catalogue(raw, "test").instances[0]


def test_catalogue_limits_default_and_reach_the_connection() -> None:
    default = _instance()
    assert default.max_result_bytes == 512 * MB
    assert connection_for(default, "shop", NO_CREDENTIALS).total_timeout_s == 300
    # A statement may run longer than the default total: the total follows it.
    assert _instance(statement_timeout_s=900).request_timeout_s == 900
    tuned = _instance(max_result_bytes=1_000, total_timeout_s=30)
    assert tuned.max_result_bytes == 1_000
    assert connection_for(tuned, "shop", NO_CREDENTIALS).total_timeout_s == 30


@pytest.mark.parametrize("field", ["max_result_bytes", "total_timeout_s"])
def test_catalogue_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError, match=rf"instances\[0\]\.{field}"):
        _instance(**{field: 0})


def test_settings_give_the_compression_threshold_and_upload_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBQUERY_COMPRESS_OVER_MB", "5")
    monkeypatch.setenv("DBQUERY_UPLOAD_LIMIT_MB", "100")
    settings = load_settings()
    assert (settings.compress_over_mb, settings.upload_limit_mb) == (5, 100)
    monkeypatch.delenv("DBQUERY_COMPRESS_OVER_MB")
    monkeypatch.delenv("DBQUERY_UPLOAD_LIMIT_MB")
    assert (load_settings().compress_over_mb, load_settings().upload_limit_mb) == (20, 1024)
