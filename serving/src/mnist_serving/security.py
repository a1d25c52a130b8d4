"""API-key check (constant time) and a per-client token-bucket rate limit."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass, field

from mnist_serving.errors import RateLimitedError, UnauthorizedError

MAX_BUCKETS = 10_000


def client_id_for_key(key: str) -> str:
    """A stable, non-secret name for an API key, for logs and rate limits."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def check_api_key(given: str | None, keys: list[str]) -> str | None:
    """The caller's key id, None when no keys are configured, else raise 401."""
    if not keys:
        return None
    if not given:
        raise UnauthorizedError(
            "missing API key: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    matched = None
    for key in keys:  # compare with every key so timing reveals nothing
        if hmac.compare_digest(given.encode(), key.encode()):
            matched = key
    if matched is None:
        raise UnauthorizedError(
            "invalid API key: check the X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    return client_id_for_key(matched)


@dataclass
class RateLimiter:
    """Token bucket per client: `per_minute` sustained, `burst` at once; 0 = off."""

    per_minute: int
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def check(self, client: str, now: float | None = None) -> None:
        """Take one token for `client` or raise 429 with Retry-After."""
        if self.per_minute <= 0:
            return
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * rate)
        if tokens < 1.0:
            retry = max(1, math.ceil((1.0 - tokens) / rate))
            raise RateLimitedError(
                f"rate limit of {self.per_minute} requests a minute exceeded; "
                f"retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        if len(self._buckets) >= MAX_BUCKETS and client not in self._buckets:
            self._buckets.clear()  # bounded memory; clients simply start full again
        self._buckets[client] = (tokens - 1.0, now)
