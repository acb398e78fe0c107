"""Credential providers: a target's secret reference (`env:VAR`, `aws:<secret id>`) -> Credentials.

A secret is JSON in the shape of an Amazon RDS secret:
`{"username", "password", "host"?, "port"?, "dbname"?}`. Values are cached per reference
for a short time and refetched after an authentication failure (`invalidate`).

Nothing that comes out of a secret is ever put in a log line, an error message, an
exception's arguments or its `__cause__`/`__context__` chain: errors name the reference
and the field that is wrong, never what the field holds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any

from core.catalogue import Instance
from core.errors import CredentialsError
from core.executors.base import Connection

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("dbquery.secrets")

DEFAULT_TTL_S = 300.0

# Bounded waits so an unreachable Secrets Manager fails a request in seconds, not minutes.
AWS_CLIENT_OPTIONS = {
    "connect_timeout": 5,
    "read_timeout": 10,
    "retries": {"max_attempts": 3, "mode": "standard"},
}


def _aws_errors() -> ModuleType:
    # boto3 and botocore are imported on first use of an aws: secret: about 10 MB of memory
    # that a deployment with env: secrets only never needs.
    from botocore import exceptions

    return exceptions


# What to tell people for the Secrets Manager error codes they can act on.
_AWS_ERROR_HINTS = {
    "ResourceNotFoundException": "was not found",
    "AccessDeniedException": (
        "cannot be read: access denied (the bot's IAM role needs secretsmanager:GetSecretValue)"
    ),
    "DecryptionFailure": "cannot be decrypted with its KMS key (check kms:Decrypt on the key)",
    "InternalServiceError": "cannot be read: AWS Secrets Manager had an internal error",
    "UnrecognizedClientException": "cannot be read: AWS did not recognise the bot's credentials",
    "InvalidSignatureException": "cannot be read: AWS rejected the bot's request signature",
    "ExpiredTokenException": "cannot be read: the bot's AWS session token has expired",
}


@dataclass(frozen=True)
class Credentials:
    username: str | None
    password: str | None = field(repr=False)
    host: str | None = None
    port: int | None = None
    dbname: str | None = None


NO_CREDENTIALS = Credentials(None, None)


@dataclass(frozen=True)
class _CacheEntry:
    credentials: Credentials
    fetched_at: float


class _SecretResponseFilter(logging.Filter):
    """Drops botocore's parser records while a secret is being fetched on this thread.

    botocore logs every raw response body at DEBUG ("Response body: ..."), which for
    GetSecretValue is the secret itself. The request runs synchronously on the calling
    thread, so a thread-local flag scopes the drop to our own fetches.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextmanager
    def active(self) -> Iterator[None]:
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self._local, "active", False)


_RESPONSE_FILTER = _SecretResponseFilter()
_BOTOCORE_BODY_LOGGER = "botocore.parsers"


def aws_secrets_client(environ: Mapping[str, str]) -> Any:
    """A Secrets Manager client for the region and endpoint named in `environ`.

    botocore alone reads only AWS_DEFAULT_REGION, so AWS_REGION is honoured here too; the
    endpoint override is passed explicitly rather than relying on botocore's own reading.
    """
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
    endpoint = (
        environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or environ.get("AWS_ENDPOINT_URL") or None
    )
    import boto3.session
    from botocore.config import Config

    # A session of our own: boto3's default session is not safe to share between threads.
    session = boto3.session.Session()
    return session.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(**AWS_CLIENT_OPTIONS),
    )


class SecretStore:
    """Resolves secret references to Credentials, caching each for `ttl_s` seconds. Thread-safe."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        aws_client_factory: Callable[[], Any] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._aws_client_factory = aws_client_factory or partial(aws_secrets_client, self._environ)
        self._clock = clock
        self._aws_client: Any = None
        self._cache: dict[str, _CacheEntry] = {}
        # One lock per reference so a slow AWS call for one target does not hold up the others,
        # and concurrent callers for the same reference wait for a single fetch.
        self._ref_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def credentials(self, secret_ref: str | None) -> Credentials:
        if secret_ref is None:
            return NO_CREDENTIALS
        with self._ref_lock(secret_ref):
            cached = self._fresh_entry(secret_ref)
            if cached is not None:
                return cached
            creds = self._fetch(secret_ref)
            with self._lock:
                self._cache[secret_ref] = _CacheEntry(creds, self._clock())
            return creds

    def invalidate(self, secret_ref: str) -> None:
        """Forget the cached value so the next call refetches (after an authentication failure).

        Taking the reference's lock waits out a fetch in flight, so its possibly stale
        result cannot land in the cache after this returns.
        """
        with self._ref_lock(secret_ref), self._lock:
            self._cache.pop(secret_ref, None)

    def _ref_lock(self, secret_ref: str) -> threading.Lock:
        with self._lock:
            return self._ref_locks.setdefault(secret_ref, threading.Lock())

    def _fresh_entry(self, secret_ref: str) -> Credentials | None:
        with self._lock:
            entry = self._cache.get(secret_ref)
        if entry is None or self._clock() - entry.fetched_at >= self._ttl_s:
            return None
        return entry.credentials

    def _fetch(self, secret_ref: str) -> Credentials:
        scheme, _, name = secret_ref.partition(":")
        if scheme == "env" and name:
            text = self._read_env(secret_ref, name)
        elif scheme == "aws" and name:
            text = self._read_aws(secret_ref, name)
        else:
            raise CredentialsError(
                f"secret reference {secret_ref!r} must be 'env:VARIABLE' or 'aws:<secret id>'"
            )
        creds = parse_secret(secret_ref, text)
        log.info("fetched secret %s", secret_ref)
        return creds

    def _read_env(self, secret_ref: str, variable: str) -> str:
        text = self._environ.get(variable)
        if text is None:
            raise CredentialsError(f"secret {secret_ref}: variable {variable} is not set")
        if not text.strip():
            raise CredentialsError(f"secret {secret_ref}: variable {variable} is empty")
        return text

    def _read_aws(self, secret_ref: str, secret_id: str) -> str:
        client = self._client(secret_ref)
        errors = _aws_errors()
        # The raise happens outside the except blocks so a botocore error, which may quote
        # the response, is not kept as the new error's __context__.
        problem: str | None = None
        try:
            with _RESPONSE_FILTER.active():
                response = client.get_secret_value(SecretId=secret_id)
        except errors.ClientError as exc:
            problem = _client_error_message(secret_ref, exc)
        except errors.BotoCoreError as exc:
            endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
            problem = _transport_error_message(secret_ref, exc, endpoint)
        if problem is not None:
            raise CredentialsError(problem)
        text = response.get("SecretString")
        if not isinstance(text, str):
            raise CredentialsError(
                f"secret {secret_ref} has no SecretString (binary secrets are not supported)"
            )
        return text

    def _client(self, secret_ref: str) -> Any:
        with self._lock:
            if self._aws_client is None:
                self._aws_client = self._create_client(secret_ref)
                logging.getLogger(_BOTOCORE_BODY_LOGGER).addFilter(_RESPONSE_FILTER)
            return self._aws_client

    def _create_client(self, secret_ref: str) -> Any:
        errors = _aws_errors()
        try:
            return self._aws_client_factory()
        except errors.NoRegionError:
            problem = "no AWS region is configured (set AWS_REGION)"
        except ValueError as exc:
            # botocore's "Invalid endpoint: <url>": the URL comes from configuration, not a secret.
            problem = f"the AWS endpoint is not usable: {exc}"
        except errors.BotoCoreError as exc:
            problem = f"the AWS client cannot be created ({type(exc).__name__})"
        raise CredentialsError(f"secret {secret_ref}: {problem}")


def _client_error_message(secret_ref: str, exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    hint = _AWS_ERROR_HINTS.get(code)
    if hint is not None:
        return f"secret {secret_ref} {hint}"
    # Secrets Manager's own error text describes the request, never the secret's value.
    detail = str(error.get("Message", "")).strip()
    return f"secret {secret_ref} cannot be read: {code}" + (f": {detail}" if detail else "")


def _transport_error_message(secret_ref: str, exc: BotoCoreError, endpoint: str | None) -> str:
    errors = _aws_errors()
    where = f" at {endpoint}" if endpoint else ""
    if isinstance(exc, errors.ConnectionError):
        return f"secret {secret_ref}: cannot reach AWS Secrets Manager{where}"
    if isinstance(exc, errors.HTTPClientError):
        return (
            f"secret {secret_ref}: the connection to AWS Secrets Manager{where} failed "
            f"({type(exc).__name__})"
        )
    if isinstance(exc, errors.NoCredentialsError | errors.PartialCredentialsError):
        return f"secret {secret_ref}: the bot has no usable AWS credentials"
    # Other botocore errors (e.g. a response that fails to parse) may quote the response,
    # so only the error's type is reported.
    return f"secret {secret_ref} cannot be read ({type(exc).__name__})"


def parse_secret(secret_ref: str, text: str) -> Credentials:
    """Read RDS-shaped secret JSON. Errors name the field that is wrong, never its content."""
    data = _json_object(secret_ref, text)
    username = data.get("username", data.get("user"))
    if username is None:
        raise CredentialsError(f'secret {secret_ref} has no "username" field')
    if not isinstance(username, str) or not username:
        raise CredentialsError(f'secret {secret_ref}: "username" must be a non-empty string')
    password = data.get("password")
    if password is None:
        raise CredentialsError(f'secret {secret_ref} has no "password" field')
    if not isinstance(password, str):
        raise CredentialsError(f'secret {secret_ref}: "password" must be a string')
    return Credentials(
        username=username,
        password=password,
        host=_optional_text(secret_ref, data, "host"),
        port=_optional_port(secret_ref, data),
        dbname=_optional_text(secret_ref, data, "dbname"),
    )


def _json_object(secret_ref: str, text: str) -> dict[str, Any]:
    # Raised outside the except block: the JSONDecodeError's .doc is the whole secret.
    problem: str | None = None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"is not valid JSON (line {exc.lineno}, column {exc.colno})"
        data = None
    if problem is not None:
        raise CredentialsError(f"secret {secret_ref} {problem}")
    if not isinstance(data, dict):
        raise CredentialsError(
            f'secret {secret_ref} must be a JSON object with "username" and "password"'
        )
    return data


def _optional_text(secret_ref: str, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CredentialsError(f'secret {secret_ref}: "{key}" must be a string')
    return value


def _optional_port(secret_ref: str, data: dict[str, Any]) -> int | None:
    value = data.get("port")
    if value is None or value == "":
        return None
    port: int | None = None
    # bool is an int subclass; `true` is not a port.
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        port = int(value.strip())
    if port is None or not 0 < port < 65536:
        raise CredentialsError(f'secret {secret_ref}: "port" must be a number from 1 to 65535')
    return port


def connection_for(instance: Instance, database: str, creds: Credentials) -> Connection:
    """Where and as whom to connect: the secret's host and port win over the catalogue's.

    The secret's dbname replaces the database only when the instance lists exactly one (the
    catalogue name is then a label for it). With several, the database the approver saw is
    kept: a secret names one database and cannot say which of them was meant.
    """
    dbname = creds.dbname if creds.dbname and len(instance.databases) == 1 else database
    return Connection(
        host=creds.host or instance.host,
        port=creds.port or instance.port,
        database=dbname,
        username=creds.username,
        password=creds.password,
        statement_timeout_s=instance.statement_timeout_s,
        max_rows=instance.max_rows,
        total_timeout_s=instance.request_timeout_s,
        tls=instance.tls,
        auth_source=instance.auth_source,
    )
