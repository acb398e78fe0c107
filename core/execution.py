"""Runs one claimed request against its target: credentials, analysis, the right executor."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from core.catalogue import Catalogue, DatabaseType
from core.errors import CredentialsError
from core.executors.base import Job
from core.executors.results import (
    MB,
    AuthenticationFailed,
    ExecutionError,
    ExecutionResult,
    ResultLimits,
)
from core.records import RequestRecord
from core.secrets import SecretStore, connection_for

log = logging.getLogger("dbquery.execution")


@dataclass
class Outcome:
    """What the request service records: a result summary and file, or an error."""

    result: ExecutionResult | None
    error: str | None

    @property
    def result_json(self) -> str | None:
        if self.result is None:
            return None
        return self.result.summary_json()

    @property
    def result_file(self) -> str | None:
        if self.result is None or self.result.file_path is None:
            return None
        return str(self.result.file_path)


class ExecutionRunner:
    def __init__(
        self,
        catalogue: Catalogue,
        secrets: SecretStore,
        results_dir: Path,
        *,
        compress_over_mb: int = 20,
        upload_limit_mb: int = 1024,
    ) -> None:
        self.catalogue = catalogue
        self.secrets = secrets
        self.results_dir = results_dir
        self.compress_over_bytes = compress_over_mb * MB
        self.upload_limit_bytes = upload_limit_mb * MB

    def run(self, request: RequestRecord) -> Outcome:
        """Never raises for a request's own failure: the error becomes the outcome."""
        try:
            return Outcome(self._execute(request), None)
        except ExecutionError as exc:
            error = exc.message
            if exc.partial is not None and exc.partial.statements:
                return Outcome(exc.partial, error)
            return Outcome(None, error)
        except CredentialsError as exc:
            return Outcome(None, exc.message)

    def _execute(self, request: RequestRecord) -> ExecutionResult:
        from core.analysis import AnalysisError, analyse

        instance = self.catalogue.instance(request.instance_id)
        if instance is None or request.database_name not in instance.databases:
            target = f"{request.instance_id}/{request.database_name}"
            raise ExecutionError(f"target {target} is no longer in the catalogue")
        try:
            analysis = analyse(
                instance.type.value,
                request.content,
                request.submission_type,
                allow_server_js=instance.allow_server_js,
            )
        except AnalysisError as exc:
            raise ExecutionError(str(exc)) from None
        out_dir = self.results_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        job = Job(
            request_uuid=str(request.uuid),
            submission_type=request.submission_type,
            content=request.content,
            out_dir=out_dir,
            read_only=analysis.read_only,
            limits=ResultLimits(
                max_result_bytes=instance.max_result_bytes,
                compress_over_bytes=self.compress_over_bytes,
                upload_limit_bytes=self.upload_limit_bytes,
            ),
            allow_server_js=instance.allow_server_js,
        )
        execute = _executor(instance.type)
        for attempt in (1, 2):
            creds = self.secrets.credentials(instance.secret)
            conn = connection_for(instance, request.database_name, creds)
            try:
                return execute(conn, job)
            except AuthenticationFailed:
                # The secret may have been rotated since it was cached: refetch once.
                if attempt == 2 or not instance.secret:
                    raise
                log.info("authentication failed for %s; refreshing its secret", instance.id)
                self.secrets.invalidate(instance.secret)
        raise AssertionError("unreachable")


def _executor(database_type: DatabaseType):
    if database_type == DatabaseType.POSTGRESQL:
        from core.executors.postgres import execute_postgres

        return execute_postgres
    from core.executors.mongo import execute_mongo

    return execute_mongo
