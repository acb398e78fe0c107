"""Credential providers against a real moto Secrets Manager over HTTP, and env: secrets."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from core.catalogue import DatabaseType, Instance
from core.errors import CredentialsError
from core.secrets import Credentials, SecretStore, connection_for
from tests.conftest import free_port

REGION = "us-east-1"
DUMMY_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Distinctive enough that finding it anywhere means the secret leaked.
LEAKY_PASSWORD = "Zq9-leak-canary-7Hv2"


def aws_client(endpoint_url: str, **config: Any) -> Any:
    return boto3.session.Session().client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=endpoint_url,
        config=Config(**config) if config else None,
        **DUMMY_KEYS,
    )


class CountingClient:
    """A real moto client that counts GetSecretValue calls and factory invocations."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.created = 0
        self.fetches = 0
        self._real: Any = None

    def factory(self) -> CountingClient:
        self.created += 1
        self._real = aws_client(self.endpoint_url)
        return self

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        self.fetches += 1
        return self._real.get_secret_value(**kwargs)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class RaisingClient:
    """Answers GetSecretValue with a given Secrets Manager error (codes moto cannot produce)."""

    def __init__(self, code: str, message: str) -> None:
        self._error = {"Error": {"Code": code, "Message": message}}

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        raise ClientError(self._error, "GetSecretValue")


@pytest.fixture(scope="module")
def sm(moto_server: str) -> Any:
    """The administrator's view of Secrets Manager: creates and rotates test secrets."""
    return aws_client(moto_server)


@pytest.fixture
def make_secret(sm: Any) -> Callable[[str | bytes], str]:
    """Create a uniquely named secret (moto is shared by the whole session); returns its id."""

    def create(value: str | bytes) -> str:
        name = f"dbq-test/{uuid.uuid4().hex[:12]}"
        if isinstance(value, bytes):
            sm.create_secret(Name=name, SecretBinary=value)
        else:
            sm.create_secret(Name=name, SecretString=value)
        return name

    return create


@pytest.fixture
def counting(moto_server: str) -> CountingClient:
    return CountingClient(moto_server)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(counting: CountingClient, clock: FakeClock) -> SecretStore:
    return SecretStore(ttl_s=300, aws_client_factory=counting.factory, environ={}, clock=clock)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture everything at DEBUG, botocore and urllib3 included."""
    for name in ("", "botocore", "boto3", "urllib3", "dbquery"):
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.clear()
    yield caplog


def rds_secret(**fields: Any) -> str:
    return json.dumps({"engine": "postgres", "dbInstanceIdentifier": "shop-1", **fields})


def instance(databases: list[str] | None = None) -> Instance:
    return Instance(
        id="pg-shop",
        name="Shop PostgreSQL",
        type=DatabaseType.POSTGRESQL,
        host="catalogue.example",
        port=5432,
        databases=databases or ["shop"],
        secret="aws:prod/pg-shop",
        statement_timeout_s=42,
        max_rows=777,
    )


def error_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def assert_no_leak(exc: BaseException, secret: str) -> None:
    for link in error_chain(exc):
        assert secret not in str(link)
        assert secret not in repr(link)
        assert all(secret not in repr(arg) for arg in link.args)
        assert all(secret not in repr(value) for value in vars(link).values())


def credentials_error(store: SecretStore, ref: str) -> CredentialsError:
    with pytest.raises(CredentialsError) as info:
        store.credentials(ref)
    return info.value


# --- reading secrets ---------------------------------------------------------------------


def test_rds_shaped_aws_secret_becomes_credentials(store: SecretStore, make_secret) -> None:
    secret_id = make_secret(
        rds_secret(username="app", password="pw-1", host="db.internal", port=6432, dbname="shopdb")
    )

    creds = store.credentials(f"aws:{secret_id}")

    assert creds == Credentials("app", "pw-1", host="db.internal", port=6432, dbname="shopdb")


def test_secret_with_only_username_and_password_leaves_the_rest_empty(
    store: SecretStore, make_secret
) -> None:
    secret_id = make_secret(json.dumps({"username": "app", "password": "pw"}))

    assert store.credentials(f"aws:{secret_id}") == Credentials("app", "pw")


def test_no_secret_reference_means_no_credentials(store: SecretStore) -> None:
    assert store.credentials(None) == Credentials(None, None)


def test_env_secret_is_read_from_the_variable() -> None:
    value = json.dumps({"user": "reporter", "password": "pw", "port": "5433"})
    store = SecretStore(environ={"PG_SHOP": value})

    assert store.credentials("env:PG_SHOP") == Credentials("reporter", "pw", port=5433)


def test_unset_env_variable_is_named() -> None:
    error = credentials_error(SecretStore(environ={}), "env:PG_SHOP")

    assert str(error) == "secret env:PG_SHOP: variable PG_SHOP is not set"


def test_empty_env_variable_is_named() -> None:
    error = credentials_error(SecretStore(environ={"PG_SHOP": "  "}), "env:PG_SHOP")

    assert str(error) == "secret env:PG_SHOP: variable PG_SHOP is empty"


def test_unknown_reference_scheme_is_refused() -> None:
    error = credentials_error(SecretStore(environ={}), "vault:prod/pg")

    assert "must be 'env:VARIABLE' or 'aws:<secret id>'" in str(error)


def test_credentials_repr_hides_the_password() -> None:
    assert LEAKY_PASSWORD not in repr(Credentials("app", LEAKY_PASSWORD))


# --- malformed secrets: named precisely, never quoted --------------------------------------


MALFORMED = [
    ('{"username": "app", "password": "' + LEAKY_PASSWORD + '"', "is not valid JSON (line 1,"),
    (json.dumps([LEAKY_PASSWORD]), 'must be a JSON object with "username" and "password"'),
    (json.dumps({"username": LEAKY_PASSWORD}), 'has no "password" field'),
    (json.dumps({"password": LEAKY_PASSWORD}), 'has no "username" field'),
    (json.dumps({"username": "app", "password": [LEAKY_PASSWORD]}), '"password" must be a string'),
    (json.dumps({"username": 7, "password": LEAKY_PASSWORD}), '"username" must be a non-empty'),
    (
        json.dumps({"username": "app", "password": "x", "port": LEAKY_PASSWORD}),
        '"port" must be a number from 1 to 65535',
    ),
    (
        json.dumps({"username": "app", "password": LEAKY_PASSWORD, "port": 70000}),
        '"port" must be a number from 1 to 65535',
    ),
    (
        json.dumps({"username": "app", "password": LEAKY_PASSWORD, "port": True}),
        '"port" must be a number from 1 to 65535',
    ),
    (
        json.dumps({"username": "app", "password": "x", "host": [LEAKY_PASSWORD]}),
        '"host" must be a string',
    ),
]


@pytest.mark.parametrize(("value", "expected"), MALFORMED)
def test_malformed_env_secret_names_the_problem_not_the_value(value: str, expected: str) -> None:
    error = credentials_error(SecretStore(environ={"PG_SHOP": value}), "env:PG_SHOP")

    assert str(error).startswith("secret env:PG_SHOP")
    assert expected in str(error)
    assert_no_leak(error, LEAKY_PASSWORD)


def test_malformed_json_aws_secret_is_named_and_never_quoted(
    store: SecretStore, make_secret, debug_logs: pytest.LogCaptureFixture
) -> None:
    secret_id = make_secret('{"username": "app", "password": "' + LEAKY_PASSWORD + '",')
    debug_logs.clear()

    error = credentials_error(store, f"aws:{secret_id}")

    assert str(error).startswith(f"secret aws:{secret_id} is not valid JSON")
    assert_no_leak(error, LEAKY_PASSWORD)
    assert LEAKY_PASSWORD not in debug_logs.text


def test_aws_secret_without_password_is_named(store: SecretStore, make_secret) -> None:
    secret_id = make_secret(rds_secret(username="app", host="db.internal"))

    error = credentials_error(store, f"aws:{secret_id}")

    assert str(error) == f'secret aws:{secret_id} has no "password" field'


def test_binary_aws_secret_is_refused(store: SecretStore, make_secret) -> None:
    secret_id = make_secret(LEAKY_PASSWORD.encode())

    error = credentials_error(store, f"aws:{secret_id}")

    assert "has no SecretString" in str(error)
    assert_no_leak(error, LEAKY_PASSWORD)


# --- AWS failures ------------------------------------------------------------------------


def test_missing_aws_secret_is_named(store: SecretStore) -> None:
    error = credentials_error(store, "aws:prod/does-not-exist")

    assert str(error) == "secret aws:prod/does-not-exist was not found"
    assert (error.__cause__, error.__context__) == (None, None)


def test_missing_secret_is_not_cached_as_missing(
    store: SecretStore, sm: Any, counting: CountingClient
) -> None:
    name = f"dbq-test/{uuid.uuid4().hex[:12]}"
    credentials_error(store, f"aws:{name}")
    sm.create_secret(Name=name, SecretString=json.dumps({"username": "app", "password": "pw"}))

    assert store.credentials(f"aws:{name}") == Credentials("app", "pw")
    assert counting.fetches == 2


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AccessDeniedException", "access denied"),
        ("DecryptionFailure", "cannot be decrypted with its KMS key"),
        ("ExpiredTokenException", "session token has expired"),
        ("InvalidRequestException", "InvalidRequestException: marked for deletion"),
    ],
)
def test_aws_error_codes_become_clear_messages(code: str, expected: str) -> None:
    store = SecretStore(
        aws_client_factory=lambda: RaisingClient(code, "marked for deletion"), environ={}
    )

    error = credentials_error(store, "aws:prod/pg-shop")

    assert str(error).startswith("secret aws:prod/pg-shop")
    assert expected in str(error)


def test_unreachable_endpoint_is_a_clear_error() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = SecretStore(
        aws_client_factory=lambda: aws_client(
            endpoint, retries={"total_max_attempts": 1}, connect_timeout=2
        ),
        environ={},
    )

    error = credentials_error(store, "aws:prod/pg-shop")

    assert str(error) == f"secret aws:prod/pg-shop: cannot reach AWS Secrets Manager at {endpoint}"


def test_missing_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))

    error = credentials_error(SecretStore(environ={}), "aws:prod/pg-shop")

    assert str(error) == "secret aws:prod/pg-shop: no AWS region is configured (set AWS_REGION)"


def test_default_client_uses_region_and_endpoint_from_the_environment(
    moto_server: str, make_secret, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # Only the bot's own AWS identity comes from the process environment, as in production.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    secret_id = make_secret(json.dumps({"username": "app", "password": "pw"}))
    store = SecretStore(environ={"AWS_REGION": REGION, "AWS_ENDPOINT_URL": moto_server})

    assert store.credentials(f"aws:{secret_id}") == Credentials("app", "pw")


def test_aws_client_is_created_lazily_and_once(
    store: SecretStore, counting: CountingClient, make_secret
) -> None:
    first = make_secret(json.dumps({"username": "a", "password": "1"}))
    second = make_secret(json.dumps({"username": "b", "password": "2"}))
    assert counting.created == 0

    store.credentials(f"aws:{first}")
    store.credentials(f"aws:{second}")

    assert counting.created == 1
    assert counting.fetches == 2


# --- caching and invalidation -------------------------------------------------------------


def test_cached_value_is_served_until_the_ttl_passes(
    store: SecretStore, sm: Any, make_secret, clock: FakeClock
) -> None:
    secret_id = make_secret(json.dumps({"username": "app", "password": "old"}))
    ref = f"aws:{secret_id}"
    assert store.credentials(ref).password == "old"
    sm.put_secret_value(SecretId=secret_id, SecretString='{"username":"app","password":"new"}')

    clock.now += 299.9
    assert store.credentials(ref).password == "old"
    clock.now += 0.1
    assert store.credentials(ref).password == "new"


def test_invalidate_refetches_at_once(
    store: SecretStore, sm: Any, make_secret, counting: CountingClient
) -> None:
    secret_id = make_secret(json.dumps({"username": "app", "password": "old"}))
    ref = f"aws:{secret_id}"
    assert store.credentials(ref).password == "old"
    sm.put_secret_value(SecretId=secret_id, SecretString='{"username":"app","password":"new"}')
    assert store.credentials(ref).password == "old"

    store.invalidate(ref)

    assert store.credentials(ref).password == "new"
    assert counting.fetches == 2


def test_invalidating_an_unknown_reference_is_harmless(store: SecretStore) -> None:
    store.invalidate("aws:never-fetched")

    assert store.credentials(None) == Credentials(None, None)


def test_concurrent_first_calls_fetch_once(
    store: SecretStore, make_secret, counting: CountingClient
) -> None:
    secret_id = make_secret(json.dumps({"username": "app", "password": "pw"}))
    threads_n = 8
    barrier = threading.Barrier(threads_n)
    results: list[Credentials] = []

    def fetch() -> None:
        barrier.wait()
        results.append(store.credentials(f"aws:{secret_id}"))

    threads = [threading.Thread(target=fetch) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [Credentials("app", "pw")] * threads_n
    assert counting.fetches == 1


# --- logging ------------------------------------------------------------------------------


def test_secret_value_never_reaches_the_logs(
    store: SecretStore, make_secret, debug_logs: pytest.LogCaptureFixture
) -> None:
    secret_id = make_secret(rds_secret(username="app", password=LEAKY_PASSWORD))
    debug_logs.clear()

    creds = store.credentials(f"aws:{secret_id}")

    assert creds.password == LEAKY_PASSWORD
    # botocore's DEBUG output was captured, so its silence about the body is meaningful.
    assert any(r.name.startswith("botocore") for r in debug_logs.records)
    for record in debug_logs.records:
        assert LEAKY_PASSWORD not in record.getMessage()
        assert LEAKY_PASSWORD not in repr(record.args)
    fetched = [r for r in debug_logs.records if r.name == "dbquery.secrets"]
    assert [(r.levelno, r.getMessage()) for r in fetched] == [
        (logging.INFO, f"fetched secret aws:{secret_id}")
    ]


def test_env_secret_value_never_reaches_the_logs(debug_logs: pytest.LogCaptureFixture) -> None:
    value = json.dumps({"username": "app", "password": LEAKY_PASSWORD})

    SecretStore(environ={"PG_SHOP": value}).credentials("env:PG_SHOP")

    assert "fetched secret env:PG_SHOP" in debug_logs.text
    assert LEAKY_PASSWORD not in debug_logs.text


# --- connection_for -------------------------------------------------------------------------


def test_secret_fields_override_the_catalogue(store: SecretStore, make_secret) -> None:
    secret_id = make_secret(
        rds_secret(username="app", password="pw", host="db.internal", port="6432", dbname="shopdb")
    )

    conn = connection_for(instance(), "shop", store.credentials(f"aws:{secret_id}"))

    assert (conn.host, conn.port, conn.database) == ("db.internal", 6432, "shopdb")
    assert (conn.username, conn.password) == ("app", "pw")
    assert (conn.statement_timeout_s, conn.max_rows) == (42, 777)


def test_catalogue_fills_what_the_secret_leaves_out() -> None:
    conn = connection_for(instance(), "shop", Credentials("app", "pw"))

    assert (conn.host, conn.port, conn.database) == ("catalogue.example", 5432, "shop")
    assert (conn.username, conn.password) == ("app", "pw")


def test_tls_and_auth_source_come_from_the_catalogue() -> None:
    plain = connection_for(instance(), "shop", Credentials("app", "pw"))
    assert (plain.tls, plain.auth_source) == (None, None)

    strict = instance().model_copy(update={"tls": True, "auth_source": "users"})
    conn = connection_for(strict, "shop", Credentials("app", "pw"))
    assert (conn.tls, conn.auth_source) == (True, "users")


def test_no_credentials_connect_without_user() -> None:
    conn = connection_for(instance(), "shop", Credentials(None, None))

    assert (conn.username, conn.password) == (None, None)


def test_picked_database_wins_when_the_instance_lists_several() -> None:
    creds = Credentials("app", "pw", host="db.internal", dbname="postgres")

    conn = connection_for(instance(["shop", "billing"]), "billing", creds)

    assert (conn.host, conn.database) == ("db.internal", "billing")
