"""GitHub authentication: fixed tokens, and GitHub App installation tokens bought from the
fake GitHub with JWTs signed by a key pair made here."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ai_pipeline.adapters.trackers.github_auth import AppAuth, TokenAuth, check_token
from ai_pipeline.domain.errors import PermanentError, TransientError
from tests.fakes.github_server import FakeGitHub, run_fake_github

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

APP_ID = 31337
INSTALLATION = 8080
HINT = "check AI_PIPELINE_GITHUB_APP_ID, the private key and AI_PIPELINE_GITHUB_APP_INSTALLATION_ID"


def pem(key: rsa.RSAPrivateKey) -> str:
    # GitHub hands out PKCS#1 ("BEGIN RSA PRIVATE KEY") files.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGitHub]:
    with run_fake_github(token="not-used-by-apps") as gh:
        yield gh


@pytest.fixture
def gh(server: FakeGitHub, key: rsa.RSAPrivateKey) -> FakeGitHub:
    server.reset()
    server.configure_app(APP_ID, public_pem(key), INSTALLATION)
    return server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def app_auth(
    gh: FakeGitHub,
    key: rsa.RSAPrivateKey,
    refresh_margin: float = 300.0,
    clock: Callable[[], float] = time.time,
) -> AppAuth:
    return AppAuth(
        gh.url, APP_ID, pem(key), INSTALLATION, refresh_margin=refresh_margin, clock=clock
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- fixed tokens ------------------------------------------------------------------------


async def test_a_fixed_token_is_sent_as_a_bearer_token_and_never_shown(
    client: httpx.AsyncClient,
) -> None:
    auth = TokenAuth("ghp_fixedTOKEN123456789\n")

    assert await auth.authorization(client) == "Bearer ghp_fixedTOKEN123456789"
    auth.invalidate()  # nothing to renew: the same token goes again
    assert await auth.authorization(client) == "Bearer ghp_fixedTOKEN123456789"
    assert auth.secrets() == ("ghp_fixedTOKEN123456789",)
    assert "ghp_" not in repr(auth)


@pytest.mark.parametrize("token", ["", "  ", "two words", "tab\there", "naïve"])
def test_a_token_that_cannot_go_in_a_header_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII") as raised:
        check_token(token)
    assert token.strip() == "" or token not in str(raised.value)
    with pytest.raises(ValueError):
        TokenAuth(token)


# --- GitHub App installation tokens ------------------------------------------------------


async def test_a_token_is_fetched_once_with_a_well_formed_jwt_and_reused(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = app_auth(gh, key)

    first = await auth.authorization(client)
    second = await auth.authorization(client)

    assert first == second and first.startswith("Bearer ghs_")
    assert gh.tokens_issued == 1
    (sent,) = gh.requests
    assert (sent.method, sent.path) == ("POST", f"/app/installations/{INSTALLATION}/access_tokens")
    assert sent.headers["accept"] == "application/vnd.github+json"
    assert sent.headers["x-github-api-version"] == "2022-11-28"
    assert sent.headers["user-agent"] == "ai-pipeline"
    claims = jwt.decode(
        sent.headers["authorization"].removeprefix("Bearer "),
        key.public_key(),
        algorithms=["RS256"],
    )
    assert claims["iss"] == str(APP_ID)
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - (time.time() - 60)) < 5
    # The token really opens the API.
    repo = await client.get(f"{gh.url}/repos/{gh.repository}", headers={"Authorization": first})
    assert repo.status_code == 200


async def test_the_token_is_refreshed_within_the_margin_of_its_expiry(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    # GitHub's tokens live an hour; a 30 s one keeps the JWTs signed by the moved clock
    # within the drift the fake (like GitHub) tolerates.
    gh.configure_app(APP_ID, public_pem(key), INSTALLATION, token_ttl=30)
    offset = 0.0
    auth = app_auth(gh, key, refresh_margin=20.0, clock=lambda: time.time() + offset)

    first = await auth.authorization(client)
    offset = 5.0  # more than 20 s before expiry: cached
    assert await auth.authorization(client) == first
    assert gh.tokens_issued == 1
    offset = 15.0  # within 20 s of expiry: refreshed before it lapses
    refreshed = await auth.authorization(client)

    assert refreshed != first
    assert gh.tokens_issued == 2


async def test_a_failed_refresh_keeps_serving_the_token_until_it_expires(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    gh.configure_app(APP_ID, public_pem(key), INSTALLATION, token_ttl=30)
    offset = 0.0
    auth = app_auth(gh, key, refresh_margin=20.0, clock=lambda: time.time() + offset)
    first = await auth.authorization(client)

    offset = 15.0  # due for a refresh, which fails: the old token is still good
    gh.fail_next(status=502)
    assert await auth.authorization(client) == first
    offset = 31.0  # expired: a failed refresh now fails the call
    gh.fail_next(status=502)
    with pytest.raises(TransientError):
        await auth.authorization(client)
    offset = 15.0
    assert await auth.authorization(client) != first  # the fault is gone: a fresh token

    assert gh.tokens_issued == 2


async def test_concurrent_callers_share_one_exchange(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = app_auth(gh, key)
    gh.delay_next(0.3)  # the exchange is slow, so the other callers arrive during it

    headers = await asyncio.gather(*(auth.authorization(client) for _ in range(10)))

    assert len(set(headers)) == 1
    assert gh.tokens_issued == 1


async def test_invalidate_forces_a_new_exchange(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = app_auth(gh, key)
    first = await auth.authorization(client)

    auth.invalidate()
    second = await auth.authorization(client)

    assert second != first
    assert gh.tokens_issued == 2


async def test_a_wrong_key_is_permanent_with_a_hint_and_no_secret(
    gh: FakeGitHub, client: httpx.AsyncClient
) -> None:
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    auth = app_auth(gh, wrong)

    with pytest.raises(PermanentError) as raised:
        await auth.authorization(client)

    message = str(raised.value)
    assert "401" in message and "could not be decoded" in message
    assert HINT in message
    sent_jwt = gh.requests[0].headers["authorization"].removeprefix("Bearer ")
    assert auth.secrets() == (sent_jwt,)
    for secret in (sent_jwt, *pem(wrong).splitlines()[1:-1]):
        assert secret not in message
        assert secret not in repr(auth)
    assert gh.tokens_issued == 0


async def test_an_unknown_installation_is_permanent_with_the_hint(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = AppAuth(gh.url, APP_ID, pem(key), INSTALLATION + 1)

    with pytest.raises(PermanentError, match=f"installation {INSTALLATION + 1}") as raised:
        await auth.authorization(client)

    assert HINT in str(raised.value)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_from_the_exchange_is_transient(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient, status: int
) -> None:
    auth = app_auth(gh, key)
    gh.fail_next(status=status)

    with pytest.raises(TransientError, match=str(status)):
        await auth.authorization(client)

    assert (await auth.authorization(client)).startswith("Bearer ghs_")  # the retry works


async def test_a_rate_limited_exchange_is_transient_with_githubs_wait(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = app_auth(gh, key)
    gh.fail_next(status=429, retry_after=7)
    gh.rate_limit_next(retry_after=3)

    with pytest.raises(TransientError) as too_many:
        await auth.authorization(client)
    with pytest.raises(TransientError) as secondary:
        await auth.authorization(client)

    assert (too_many.value.retry_after, secondary.value.retry_after) == (7.0, 3.0)


async def test_an_unreachable_github_is_transient(
    key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = AppAuth(f"http://127.0.0.1:{closed_port()}", APP_ID, pem(key), INSTALLATION)

    with pytest.raises(TransientError, match="ConnectError"):
        await auth.authorization(client)


async def test_a_broken_connection_during_the_exchange_is_transient(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = app_auth(gh, key)
    gh.reset_connection_next()

    with pytest.raises(TransientError, match="RemoteProtocolError"):
        await auth.authorization(client)


async def test_a_success_without_a_token_is_transient(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    auth = app_auth(gh, key)
    gh.fail_next(status=201, message="Created")

    with pytest.raises(TransientError, match="without a usable token"):
        await auth.authorization(client)


async def test_an_escaped_pem_from_an_environment_variable_is_accepted(
    gh: FakeGitHub, key: rsa.RSAPrivateKey, client: httpx.AsyncClient
) -> None:
    escaped = pem(key).replace("\n", "\\n")
    auth = AppAuth(gh.url, APP_ID, escaped, INSTALLATION)

    assert (await auth.authorization(client)).startswith("Bearer ghs_")


def test_an_unreadable_key_is_refused_at_construction_without_echoing_it() -> None:
    garbage = "-----BEGIN RSA PRIVATE KEY-----\nSECRETSTUFFabc123\n-----END RSA PRIVATE KEY-----"
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )

    for text, why in [
        (garbage, "unreadable"),
        ("", "unreadable"),
        (encrypted.decode(), "unreadable"),
        (ec_key.decode(), "RSA"),
    ]:
        with pytest.raises(ValueError, match=why) as raised:
            AppAuth("https://api.github.com", APP_ID, text, INSTALLATION)
        assert "SECRETSTUFF" not in str(raised.value)
        error = raised.value  # no chained exception that could quote the key
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_the_url_ids_and_margin_are_checked(key: rsa.RSAPrivateKey) -> None:
    for app_id, installation, margin in [(0, 1, 1.0), (1, 0, 1.0), (1, 1, -1.0)]:
        with pytest.raises(ValueError):
            AppAuth("https://api.github.com", app_id, pem(key), installation, refresh_margin=margin)
    with pytest.raises(ValueError, match="http"):
        AppAuth("api.github.com", APP_ID, pem(key), INSTALLATION)
    auth = AppAuth("https://api.github.com/", APP_ID, pem(key), INSTALLATION)
    assert repr(auth) == (
        f"AppAuth(api_url='https://api.github.com', app_id={APP_ID}, "
        f"installation_id={INSTALLATION})"
    )
    assert auth.secrets() == ()
