"""Per-client rate limits: the token bucket on a clock the test moves, and the middleware in
front of the real app (routes that need no backend)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bijou.config import BijouConfig, RateLimitConfig
from bijou.serve.api import create_app
from bijou.serve.guard import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimitConfig(chat_per_minute=6, chat_burst=3), clock)
    assert [limiter.take("a", "chat") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a", "chat") == 10  # one token every 10 s
    assert limiter.take("b", "chat") == 0  # per client
    assert limiter.take("a", "other") == 0  # and per kind
    clock.now += 10
    assert limiter.take("a", "chat") == 0
    assert limiter.take("a", "chat") > 0
    clock.now += 3600  # a long pause refills to the burst, no further
    assert [limiter.take("a", "chat") for _ in range(4)][-1] > 0


def test_disabled_limits_never_refuse() -> None:
    limiter = RateLimiter(RateLimitConfig(enabled=False, chat_burst=1))
    assert all(limiter.take("a", "chat") == 0 for _ in range(50))


def test_idle_clients_are_forgotten_past_max_clients() -> None:
    limiter = RateLimiter(RateLimitConfig(max_clients=10, chat_burst=1))
    for n in range(100):
        limiter.take(f"client-{n}", "chat")
    assert len(limiter._buckets) == 10


def _app(**limits: object) -> TestClient:
    config = BijouConfig()
    serve = config.serve.model_copy(update={"rate_limit": RateLimitConfig(**limits)})
    # No backend: the routes these tests reach never ask for one.
    app = create_app(config.model_copy(update={"serve": serve}), lambda: None)  # type: ignore[arg-type,return-value]
    return TestClient(app)


def test_over_the_limit_is_429_with_retry_after_and_cors() -> None:
    client = _app(other_per_minute=1, other_burst=2)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200
    refused = client.get("/", headers={"Origin": "https://shop.example"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["detail"].startswith("too many requests")
    assert refused.headers["access-control-allow-origin"] == "*"  # the widget can read it
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_the_client_is_the_trusted_proxy_header_when_configured() -> None:
    client = _app(other_per_minute=1, other_burst=1, forwarded_header="X-Forwarded-For")
    assert client.get("/", headers={"X-Forwarded-For": "10.0.0.1, 203.0.113.5"}).status_code == 200
    assert client.get("/", headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 429
    assert client.get("/", headers={"X-Forwarded-For": "203.0.113.6"}).status_code == 200


def test_a_refused_websocket_is_closed_as_a_policy_violation() -> None:
    client = _app(chat_per_minute=1, chat_burst=1, other_per_minute=1, other_burst=1)
    client.get("/")
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/v1/chat/ws"):
        pass
    assert refused.value.code == 1008
