"""What every Redis adapter shares: one way to connect, and one meaning of "unavailable"."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ai_pipeline.domain.errors import UnavailableError

# Exponential backoff from 50 ms, capped at 0.5-1 s per wait: 40 retries ride out about
# 30 s (20-37 s, jittered) of a restarting or failing-over Redis before an operation raises.
RETRY_BACKOFF = EqualJitterBackoff(cap=1.0, base=0.05)
RETRIES = 40
SOCKET_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
CONNECT_TIMEOUT = 2.0
HEALTH_CHECK_INTERVAL = 15

P = ParamSpec("P")
T = TypeVar("T")


def connection_pool(url: str, max_connections: int = MAX_CONNECTIONS) -> BlockingConnectionPool:
    """Clients on it connect lazily, on the first command; with decode_responses every
    reply is str. Bounded, and callers wait their turn: a burst of requests (or a
    rebuild) must queue for a connection, not fail with "too many connections"."""
    return BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=SOCKET_TIMEOUT * 6,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(RETRY_BACKOFF, RETRIES),
    )


def connect(url: str, max_connections: int = MAX_CONNECTIONS) -> Redis:
    """A client owning its pool: closing it closes the pool."""
    return Redis.from_pool(connection_pool(url, max_connections))


def unavailable(
    op: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis still unreachable once the client's retries are spent: the caller is not at
    fault, so the runner waits and redelivers (the API answers 503) instead of failing it."""

    @functools.wraps(op)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await op(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise UnavailableError(
                f"redis: {type(exc).__name__}: {exc}", dependency="state"
            ) from exc

    return guarded
