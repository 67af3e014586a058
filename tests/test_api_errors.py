"""Every error path of the chat and admin APIs through the real in-process app: a 4xx with a
clear `detail`, never a 5xx, never a traceback or a file path; an unexpected failure is a
generic 500 whose reference is in the log; and the app goes on serving."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from fastapi.testclient import TestClient

from bijou.catalog.schema import Product
from bijou.eval.hostile import error_problem
from bijou.serve.api import create_app

UNKNOWN = "0" * 32


def _refused(response, status: int | None = None) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    problem = error_problem(response.status_code, response.headers, response.content)
    assert problem is None, problem
    body = response.json()
    return body.get("detail") or body["error"]["message"]


def _product(base: Product, **update: object) -> dict:
    return json.loads(base.model_copy(update=update).model_dump_json())


# --- chat -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"message": 12}, 422),
        ({"message": ["rings"]}, 422),
        ({"message": "rings", "session_id": 5}, 422),
        ({"message": "rings", "shopper_id": ""}, 422),
        ({"message": "rings", "shopper_id": "x" * 200}, 422),
        ({"message": "rings", "session_id": UNKNOWN}, 404),
        ({"message": "rings", "session_id": "../../etc/passwd"}, 404),
        ({"message": "rings", "image": "data:image/png;base64,!!!"}, 400),
        ({"message": "rings", "image": base64.b64encode(b"GIF89a" + b"\0" * 20).decode()}, 400),
    ],
)
def test_chat_errors(app_client: TestClient, body: dict, status: int) -> None:
    _refused(app_client.post("/v1/chat", json=body), status)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"", "application/json"),
        (b"[]", "application/json"),
        (b"null", "application/json"),
        (b'{"message": "\xff\xfe rings"}', "application/json"),  # invalid UTF-8
        (b"message=rings", "application/x-www-form-urlencoded"),
        (b'{"message": "rings"}', "text/plain"),
    ],
)
def test_chat_bodies_that_are_not_a_chat_message(
    app_client: TestClient, content: bytes, content_type: str
) -> None:
    _refused(app_client.post("/v1/chat", content=content, headers={"content-type": content_type}))


def test_websocket_errors_keep_the_socket_open(app_client: TestClient) -> None:
    with app_client.websocket_connect("/v1/chat/ws") as socket:
        for message in (
            "[]",
            '{"message": 5}',
            json.dumps({"message": "rings", "session_id": UNKNOWN}),
            json.dumps({"message": "rings", "image": "!!"}),
        ):
            socket.send_text(message)
            answer = socket.receive_json()
            assert answer["type"] == "error" and answer["detail"], answer
            assert ".py" not in answer["detail"] and "Traceback" not in answer["detail"]
        socket.send_bytes(b"\xff\xfe")  # not text at all
        assert socket.receive_json()["type"] == "error"
        socket.send_json({"message": "", "session_id": UNKNOWN})
        assert socket.receive_json()["type"] == "error"  # still open
    assert app_client.get("/healthz").status_code == 200


def test_chat_completions_errors(app_client: TestClient) -> None:
    post = app_client.post
    user = [{"role": "user", "content": "gold rings"}]
    _refused(
        post("/v1/chat/completions", json={"messages": user, "metadata": {"session_id": UNKNOWN}}),
        404,
    )
    _refused(
        post("/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]}), 400
    )
    _refused(
        post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 3000}]}),
        413,
    )
    # OpenAI's own answer to a malformed request is a 400 in its error shape.
    _refused(post("/v1/chat/completions", json={"messages": user * 201}), 400)
    _refused(post("/v1/chat/completions", json={"messages": user, "user": ""}), 400)


def test_a_shopper_id_never_opens_someone_elses_session(app_client: TestClient) -> None:
    """Knowing a shopper id (an email, a loyalty number) is no key to their cart."""
    first = app_client.post("/v1/sessions", json={"shopper_id": "victim@example.com"}).json()
    answer = app_client.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "what is in my cart"}],
            "user": "victim@example.com",
        },
    ).json()
    assert answer["bijou"]["session_id"] != first["session_id"]


def test_voice_errors(app_client: TestClient) -> None:
    def post(data: bytes, **form: str):
        return app_client.post(
            "/v1/voice", files={"audio": ("a.wav", data, "audio/wav")}, data=form
        )

    _refused(app_client.post("/v1/voice"), 422)
    _refused(post(b"RIFF"), 400)
    _refused(post(b"x", language="klingon"), 422)


# --- admin ----------------------------------------------------------------------------
def test_a_product_without_an_image_is_upserted(
    app_client: TestClient, small_products: list[Product], admin_headers: dict[str, str]
) -> None:
    body = {
        "upsert": [_product(small_products[0], id="no-image-1", title="Plain Band", image=None)]
    }
    answer = app_client.post("/v1/admin/products", json=body, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"upserted": 1, "deleted": 0}
    assert app_client.get("/v1/products/no-image-1").json()["product"]["title"] == "Plain Band"
    _refused(app_client.get("/v1/products/no-image-1/image"), 404)
    app_client.post("/v1/admin/products", json={"delete": ["no-image-1"]}, headers=admin_headers)


@pytest.mark.parametrize(
    "update",
    [
        {"image": "/etc/passwd"},
        {"image": "../../../../etc/passwd"},
        {"video": "/proc/self/environ"},
        {"price": "cheap"},
        {"price": -5},
        {"article": " "},
        {"id": ""},
    ],
)
def test_admin_refuses_bad_products(
    app_client: TestClient,
    small_products: list[Product],
    admin_headers: dict[str, str],
    update: dict,
) -> None:
    body = {"upsert": [{**_product(small_products[0], id="bad-1"), **update}]}
    _refused(app_client.post("/v1/admin/products", json=body, headers=admin_headers), 422)
    _refused(app_client.get("/v1/products/bad-1"), 404)  # nothing half-written


def test_admin_refuses_bad_bodies(
    app_client: TestClient, small_products: list[Product], admin_headers: dict[str, str]
) -> None:
    post = app_client.post
    headers = {**admin_headers, "content-type": "application/json"}
    _refused(post("/v1/admin/products", content=b"{", headers=headers), 422)
    _refused(post("/v1/admin/products", content=b'{"upsert": "all"}', headers=headers), 422)
    # Bytes that are not UTF-8: FastAPI's own 400.
    _refused(post("/v1/admin/products", content=b'{"upsert": [\xff]}', headers=headers), 400)
    one = _product(small_products[0])
    _refused(post("/v1/admin/products", json={"upsert": [one] * 1001}, headers=admin_headers), 422)
    _refused(
        post("/v1/admin/products", json={"delete": ["x"] * 10_001}, headers=admin_headers), 422
    )
    _refused(post("/v1/admin/products", json={"upsert": [one]}), 401)
    _refused(post("/v1/admin/products", json={"upsert": [one]}, headers={"X-API-Key": ""}), 401)
    deleted = post("/v1/admin/products", json={"delete": ["never-there"]}, headers=admin_headers)
    assert deleted.json() == {"upserted": 0, "deleted": 0}


def test_a_body_over_the_limit_is_413_before_it_is_read(
    app_client: TestClient, admin_headers: dict[str, str]
) -> None:
    limit = app_client.app.state.config.serve.max_body_bytes

    def chunks():  # streamed: the server must stop it, not buffer it
        yield b'{"delete": ["'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"]}'

    headers = {**admin_headers, "content-type": "application/json"}
    _refused(app_client.post("/v1/admin/products", content=chunks(), headers=headers), 413)


def test_admin_disabled_is_403(app_client: TestClient) -> None:
    config = app_client.app.state.config
    closed = config.model_copy(
        update={"serve": config.serve.model_copy(update={"admin_api_key": None})}
    )
    backend = app_client.app.state.backend
    with TestClient(create_app(closed, lambda: backend)) as client:
        _refused(
            client.post("/v1/admin/products", json={"delete": ["x"]}, headers={"X-API-Key": "x"}),
            403,
        )


# --- an unexpected failure ---------------------------------------------------------------
def test_an_unexpected_failure_is_a_generic_500_and_is_logged(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend = app_client.app.state.backend

    async def broken(*args: object) -> None:
        raise OSError(2, "No such file or directory", "/srv/shop/secret/index/segment.dat")

    monkeypatch.setattr(backend, "product", broken)
    with (
        TestClient(app_client.app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR),
    ):
        answer = client.get("/v1/products/anything")
    assert answer.status_code == 500
    detail = answer.json()["detail"]
    assert (
        "/srv" not in answer.text and "segment" not in answer.text and "OSError" not in answer.text
    )
    reference = detail.rsplit(" ", 1)[-1].rstrip(")")
    assert any(reference in record.getMessage() for record in caplog.records)
    assert any(
        "segment.dat" in (record.exc_text or "") or record.exc_info for record in caplog.records
    )
    monkeypatch.undo()
    assert app_client.get("/healthz").status_code == 200
