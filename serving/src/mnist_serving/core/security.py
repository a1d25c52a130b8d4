"""API-key check (constant time) and moving-window rate limits (the `limits` library).

Limits apply per API key by default. Anonymous callers are limited only when
RATE_LIMIT_ANONYMOUS is set, by the client address that uvicorn derives from a
trusted proxy's X-Forwarded-For. Failed key checks are limited per address, so
keys cannot be guessed at speed. With RATE_LIMIT_STORAGE_URI=redis://... every
replica counts against one shared limit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from mnist_serving.core.config import ROLES, Settings
from mnist_serving.core.errors import (
    ForbiddenError,
    RateLimitedError,
    UnauthorizedError,
)

log = logging.getLogger(__name__)
CHALLENGE = {"WWW-Authenticate": "ApiKey"}


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a key id ("key-…") or, without keys, the address.

    `roles` are the key's; without keys configured every caller has them all.
    """

    id: str
    authenticated: bool
    roles: frozenset[str] = ROLES


def client_id_for_key(key: str) -> str:
    """A stable, non-secret name for an API key, for logs and rate limits."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def match_key(given: str | None, keys: list[str]) -> str | None:
    """The key among `keys` that equals `given`, else None (constant time)."""
    if not given:
        return None
    matched = None
    for key in keys:  # compare with every key so timing reveals nothing
        if hmac.compare_digest(given.encode(), key.encode()):
            matched = key
    return matched


def forbidden(caller: Caller, roles: frozenset[str], what: str) -> ForbiddenError:
    """The 403 for a known key that lacks every role in `roles`."""
    needed = " or ".join(f"'{role}'" for role in sorted(roles))
    return ForbiddenError(
        f"API key {caller.id} lacks the role {needed} that {what} needs; give the "
        f"key that role in API_KEYS (KEY:role+role) or use a key that has it"
    )


def unauthorized(given: str | None) -> UnauthorizedError:
    """The 401 for a missing or an unknown key."""
    if not given:
        return UnauthorizedError(
            "missing API key: send it in the X-API-Key header", headers=CHALLENGE
        )
    return UnauthorizedError(
        "invalid API key: check the X-API-Key header", headers=CHALLENGE
    )


def _storage(uri: str) -> Storage:
    """The async storage for memory:// or redis:// (redis-py's asyncio client)."""
    if uri.startswith("memory://"):
        return storage_from_string("async+memory://")
    return storage_from_string(f"async+{uri}", implementation="redispy")


def _parsed(limit: str) -> list[RateLimitItem]:
    return parse_many(limit) if limit else []


class RateLimiter:
    """Moving-window limits per caller, per anonymous address and per failed key."""

    def __init__(self, settings: Settings) -> None:
        self.storage = _storage(settings.rate_limit_storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.keyed = _parsed(settings.rate_limit)
        self.anonymous = _parsed(settings.rate_limit_anonymous)
        self.auth_failures = _parsed(settings.auth_failure_limit)

    async def charge(self, caller: Caller, cost: int = 1) -> None:
        """Take `cost` hits (one per image) from the caller's limits, or raise 429."""
        items = self.keyed if caller.authenticated else self.anonymous
        await self._hit(items, ("caller", caller.id), cost, "requests")

    async def check_auth_failures(self, source: str) -> None:
        """429 while `source` is above its limit of failed key checks."""
        for item in self.auth_failures:
            if not await self._safely(self.strategy.test(item, "auth", source)):
                raise await self._limited(
                    item, ("auth", source), "failed API-key checks"
                )

    async def auth_failed(self, source: str) -> None:
        """Count one failed key check from `source`."""
        await self._hit(
            self.auth_failures, ("auth", source), 1, "failed API-key checks"
        )

    async def _hit(
        self, items: list[RateLimitItem], ids: tuple[str, str], cost: int, what: str
    ) -> None:
        for item in items:
            if not await self._safely(self.strategy.hit(item, *ids, cost=cost)):
                raise await self._limited(item, ids, what)

    @staticmethod
    async def _safely(check: Awaitable[bool]) -> bool:
        """The storage's answer; True (allow) when the storage cannot be reached.

        A Redis outage must not take predictions down with it: serving goes on
        unlimited and says so in the log.
        """
        try:
            return await check
        except Exception as exc:
            log.warning(
                "rate-limit storage unavailable (%s); requests are not limited",
                exc,
                extra={"event": "rate_limit_storage_error"},
            )
            return True

    async def _limited(
        self, item: RateLimitItem, ids: tuple[str, str], what: str
    ) -> RateLimitedError:
        """The 429 for `item`, with Retry-After from the window's reset time."""
        retry = 1
        try:
            stats = await self.strategy.get_window_stats(item, *ids)
            retry = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:  # noqa: S110 - the 429 stands without the figure
            pass
        return RateLimitedError(
            f"too many {what}: the rate limit is {item}; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
