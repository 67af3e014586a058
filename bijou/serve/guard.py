"""Per-client rate limits for the HTTP API: a token bucket per client and kind of request.

A client is its connection's address, or the last entry of a trusted proxy's header
(`serve.rate_limit.forwarded_header`). Chat-like requests (each runs the LLM) and the rest
have separate buckets, so browsing product images never eats into a shopper's turns. Over
the limit a request is answered 429 with Retry-After before any other work is done. The
buckets live in the Ingress replica's memory: with N replicas a client gets up to N times
the rate, which a shop sizes for (docs/reliability.md).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from bijou.config import RateLimitConfig

Kind = Literal["chat", "other"]
# Requests that each cost an LLM turn; websocket messages are counted as chat by the route.
CHAT_PATHS = frozenset({"/v1/chat", "/v1/voice", "/v1/chat/completions"})
# Probes from the platform (Kubernetes, a load balancer) are never limited.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    detail = "too many requests from this client; wait and try again"

    def __init__(
        self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self._rates: dict[Kind, tuple[float, int]] = {
            "chat": (config.chat_per_minute / 60.0, config.chat_burst),
            "other": (config.other_per_minute / 60.0, config.other_burst),
        }
        self._buckets: OrderedDict[tuple[str, Kind], _Bucket] = OrderedDict()
        header = config.forwarded_header
        self._header = header.lower().encode("latin-1") if header else None

    def client_of(self, scope: Scope) -> str:
        if self._header is not None:
            for name, value in scope.get("headers", ()):
                if name == self._header:
                    return value.decode("latin-1").split(",")[-1].strip()
        client = scope.get("client")
        return client[0] if client else "unknown"

    def take(self, client: str, kind: Kind) -> int:
        """0 when the request may go ahead (a token is spent), else the seconds to wait."""
        if not self.config.enabled:
            return 0
        rate, burst = self._rates[kind]
        now = self.clock()
        key = (client, kind)
        bucket = self._buckets.pop(key, None) or _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.config.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - bucket.tokens) / rate))


class RateLimitMiddleware:
    """ASGI middleware: HTTP requests and websocket connections are counted; a refused HTTP
    request gets 429, a refused websocket is closed with 1008 (policy violation)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        kind: Kind = "chat" if scope["path"] in CHAT_PATHS else "other"
        wait = self.limiter.take(self.limiter.client_of(scope), kind)
        if not wait:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
            return
        body = json.dumps({"detail": self.limiter.detail, "retry_after": wait}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(wait).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
