"""Every HTTP endpoint end to end, through the in-process backend with the real models: the
small catalog's index, the default LLM and faster-whisper (speech synthesized by espeak-ng).
The bad-input cases must all be 4xx and leave the app serving."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bijou.catalog.schema import Product
from bijou.retrieval.search import SearchEngine


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    return app_client


def _events(response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _jpeg(product: Product, engine: SearchEngine) -> bytes:
    image = engine.store.load(product)
    assert image is not None
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def _speech(espeak: str, tmp_path: Path, text: str, voice: str = "en-us+f3") -> bytes:
    path = tmp_path / "query.wav"
    subprocess.run([espeak, "-v", voice, "-s", "140", "-w", str(path), text], check=True)
    return path.read_bytes()


# --- health, schema -------------------------------------------------------------------
def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/chat",
        "/v1/voice",
        "/v1/search",
        "/v1/products/{product_id}",
        "/v1/products/{product_id}/image",
        "/v1/sessions",
        "/v1/sessions/{session_id}/cart",
        "/v1/admin/products",
        "/v1/chat/completions",
        "/v1/tryon",
        "/healthz",
        "/readyz",
    ):
        assert path in paths


# --- chat -----------------------------------------------------------------------------
def test_chat_streams_deltas_then_a_grounded_reply(client: TestClient) -> None:
    response = client.post("/v1/chat", json={"message": "silver earrings under 2000"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response)
    assert events[0][0] == "session"
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    kind, reply = events[-1]
    assert kind == "reply" and deltas
    assert "".join(deltas).strip() == reply["text"]
    assert reply["products"]
    for product in reply["products"]:
        assert product["price"] <= 2000
        assert product["title"] in reply["text"]
    session = events[0][1]["session_id"]
    follow = _events(client.post("/v1/chat", json={"session_id": session, "message": "cheaper"}))
    cheapest = min(p["price"] for p in reply["products"])
    assert all(p["price"] < cheapest for p in follow[-1][1]["products"])


def test_chat_with_a_photo(client: TestClient, small_products, small_engine) -> None:
    ring = next(p for p in small_products if p.article == "Ring")
    photo = base64.b64encode(_jpeg(ring, small_engine)).decode()
    events = _events(client.post("/v1/chat", json={"message": "", "image": photo}))
    assert events[-1][0] == "reply" and events[-1][1]["products"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"message": ""}, 422),  # nothing to answer
        ({"message": "x" * 5000}, 422),  # huge text
        ({"message": "rings", "image": "not base64!!"}, 400),
        ({"message": "rings", "image": base64.b64encode(b"not an image").decode()}, 400),
        ({"message": "rings", "image": base64.b64encode(b"\xff" * 400_000).decode()}, 413),
        ({"message": "rings", "session_id": "0" * 32}, 404),
        ({"message": "rings", "session_id": "'; drop table sessions; --"}, 404),
    ],
)
def test_chat_bad_input_is_4xx(client: TestClient, body: dict, status: int) -> None:
    response = client.post("/v1/chat", json=body)
    assert response.status_code == status, response.text
    assert "detail" in response.json()


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/chat", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_websocket_chat(client: TestClient) -> None:
    with client.websocket_connect("/v1/chat/ws") as socket:
        socket.send_text("{broken")
        assert socket.receive_json()["type"] == "error"  # and the connection stays open
        socket.send_json({"message": "a bracelet for my sister"})
        first = socket.receive_json()
        assert first["type"] == "session"
        kinds = []
        while True:
            message = socket.receive_json()
            kinds.append(message["type"])
            if message["type"] == "reply":
                assert message["reply"]["session_id"] == first["session_id"]
                break
        assert "delta" in kinds


# --- voice ----------------------------------------------------------------------------
def test_voice_query_is_transcribed_and_answered(
    client: TestClient, tmp_path: Path, espeak: str
) -> None:
    audio = _speech(espeak, tmp_path, "silver earrings under two thousand rupees")
    response = client.post(
        "/v1/voice", files={"audio": ("query.wav", audio, "audio/wav")}, data={"language": "en"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "earring" in body["transcript"]["text"].lower()
    assert body["reply"]["products"]
    assert body["reply"]["session_id"] == body["session_id"]


def test_voice_bad_audio_is_4xx(client: TestClient, tmp_path: Path, espeak: str) -> None:
    def post(data: bytes) -> int:
        return client.post("/v1/voice", files={"audio": ("a.wav", data, "audio/wav")}).status_code

    assert post(b"") == 400
    assert post(b"RIFF\x00\x00garbage" * 10) == 400
    long_text = " ".join(["silver earrings for my wife under two thousand rupees"] * 8)
    assert post(_speech(espeak, tmp_path, long_text)) == 413  # longer than speech.max_seconds


# --- search and products ----------------------------------------------------------------
def test_search_by_text_photo_and_both(client: TestClient, small_products, small_engine) -> None:
    by_text = client.post("/v1/search", data={"text": "gold bangles", "top_k": 5}).json()
    assert 0 < len(by_text["results"]) <= 5
    assert by_text["results"][0]["image_url"].startswith("/v1/products/")
    watch = next(p for p in small_products if p.article == "Watches")
    photo = {"image": ("w.jpg", _jpeg(watch, small_engine), "image/jpeg")}
    by_photo = client.post("/v1/search", files=photo).json()
    assert by_photo["results"]
    both = client.post("/v1/search", data={"text": "watch"}, files=photo).json()
    assert both["results"]
    assert client.post("/v1/search", data={"text": ""}).status_code == 422
    bad = {"image": ("x.jpg", b"corrupt", "image/jpeg")}
    assert client.post("/v1/search", files=bad).status_code == 400


def test_search_takes_a_json_body(client: TestClient, small_products, small_engine) -> None:
    as_json = client.post("/v1/search", json={"text": "gold bangles", "top_k": 5})
    as_form = client.post("/v1/search", data={"text": "gold bangles", "top_k": 5})
    assert as_json.status_code == 200 and as_json.json() == as_form.json()
    watch = next(p for p in small_products if p.article == "Watches")
    photo = base64.b64encode(_jpeg(watch, small_engine)).decode()
    by_photo = client.post("/v1/search", json={"image": photo, "top_k": 3}).json()
    assert by_photo["results"][0]["article"] == "Watches"
    for body, status in [({"text": ""}, 422), ({"top_k": 0, "text": "x"}, 422),
                         ({"image": "not base64!"}, 400)]:  # fmt: skip
        assert client.post("/v1/search", json=body).status_code == status
    json_type = {"content-type": "application/json"}
    junk = client.post("/v1/search", content=b"{not json", headers=json_type)
    assert junk.status_code == 422


def test_products_and_images(client: TestClient, small_products) -> None:
    product = small_products[0]
    body = client.get(f"/v1/products/{product.id}").json()
    assert body["product"]["title"] == product.title
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    Image.open(io.BytesIO(image.content)).verify()
    assert client.get("/v1/products/no-such-id").status_code == 404
    assert client.get("/v1/products/no-such-id/image").status_code == 404


# --- sessions and carts ------------------------------------------------------------------
def test_cart_endpoints(client: TestClient, small_products) -> None:
    session = client.post("/v1/sessions", json={}).json()["session_id"]
    product = small_products[1]
    cart = f"/v1/sessions/{session}/cart"
    body = client.post(cart, json={"product_id": product.id, "quantity": 2}).json()
    assert body["items"][0]["quantity"] == 2
    assert body["total"] == pytest.approx(2 * product.price)
    assert client.get(cart).json() == body
    assert client.post(cart, json={"product_id": "nope"}).status_code == 404
    assert client.post(cart, json={"product_id": product.id, "quantity": 0}).status_code == 422
    assert client.delete(f"{cart}/{product.id}").json()["items"] == []
    assert client.delete(f"{cart}/{product.id}").status_code == 404
    assert client.get(f"/v1/sessions/{'f' * 32}/cart").status_code == 404


def test_returning_shopper_session(client: TestClient) -> None:
    first = client.post("/v1/sessions", json={"shopper_id": "api-shopper"}).json()["session_id"]
    assert len(first) == 32
    assert client.post("/v1/sessions", json={"shopper_id": ""}).status_code == 422


# --- try-on -------------------------------------------------------------------------------
def _photo_jpeg(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def selfie() -> bytes:
    skimage_data = pytest.importorskip("skimage.data")
    return _photo_jpeg(skimage_data.astronaut())  # a real portrait (Eileen Collins)


def _try_on(client: TestClient, photo: bytes, product_id: str, **fields: str):
    files = {"photo": ("me.jpg", photo, "image/jpeg")}
    return client.post("/v1/tryon", files=files, data={"product_id": product_id, **fields})


def test_try_on_returns_the_photo_with_the_piece(client: TestClient, small_products, selfie):
    info = client.get("/v1/tryon").json()
    assert {"Earrings", "Pendant", "Necklace and Chains", "Jewellery Set"} == set(info["articles"])
    assert "never" in info["privacy"]
    earrings = next(p for p in small_products if p.article == "Earrings")
    response = _try_on(client, selfie, earrings.id)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "no-store"
    result = Image.open(io.BytesIO(response.content))
    assert result.size == Image.open(io.BytesIO(selfie)).size
    png = _try_on(client, selfie, earrings.id, format="png")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    necklace = next(p for p in small_products if p.article == "Necklace and Chains")
    assert _try_on(client, selfie, necklace.id).status_code == 200


def test_try_on_with_a_session_focuses_the_conversation(client: TestClient, small_products, selfie):
    pendant = next(p for p in small_products if p.article == "Pendant")
    session = client.post("/v1/sessions", json={}).json()["session_id"]
    assert _try_on(client, selfie, pendant.id, session_id=session).status_code == 200
    store = client.app.state.backend.agent.store
    assert store.get_session(session).state.focus == pendant.id
    assert _try_on(client, selfie, pendant.id, session_id="f" * 32).status_code == 404


def test_try_on_bad_input_is_4xx(client: TestClient, small_products, selfie) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    earrings = next(p for p in small_products if p.article == "Earrings")
    watch = next(p for p in small_products if p.article == "Watches")
    cat = _try_on(client, _photo_jpeg(skimage_data.chelsea()), earrings.id)
    assert cat.status_code == 422 and cat.json()["reason"] == "no_face"
    assert "no face" in cat.json()["detail"]
    small = _try_on(client, _photo_jpeg(skimage_data.camera()), earrings.id)
    assert small.status_code == 422 and small.json()["reason"] == "face_too_small"
    not_worn = _try_on(client, selfie, watch.id)
    assert not_worn.status_code == 422 and not_worn.json()["reason"] == "not_wearable"
    assert _try_on(client, selfie, "no-such-product").status_code == 404
    assert _try_on(client, b"not an image at all", earrings.id).status_code == 400
    assert _try_on(client, selfie[: len(selfie) // 3], earrings.id).status_code == 400
    assert _try_on(client, b"\xff" * 300_000, earrings.id).status_code == 413
    assert _try_on(client, selfie, earrings.id, format="gif").status_code == 422
    no_photo = client.post("/v1/tryon", data={"product_id": earrings.id})
    assert no_photo.status_code == 422
    assert client.get("/healthz").status_code == 200  # still serving


# --- admin --------------------------------------------------------------------------------
def test_admin_upsert_and_delete(
    client: TestClient, small_products, admin_headers: dict[str, str]
) -> None:
    base = small_products[0]
    new = base.model_copy(update={"id": "api-test-1", "title": "Test Moonstone Ring"})
    payload = {"upsert": [json.loads(new.model_dump_json())]}
    assert client.post("/v1/admin/products", json=payload).status_code == 401
    wrong = client.post("/v1/admin/products", json=payload, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    ok = client.post("/v1/admin/products", json=payload, headers=admin_headers)
    assert ok.json() == {"upserted": 1, "deleted": 0}
    assert client.get("/v1/products/api-test-1").json()["product"]["title"] == new.title
    bad = {"upsert": [{"id": "x", "title": "", "article": "Ring", "price": -1, "list_price": 1}]}
    assert client.post("/v1/admin/products", json=bad, headers=admin_headers).status_code == 422
    gone = client.post("/v1/admin/products", json={"delete": ["api-test-1"]}, headers=admin_headers)
    assert gone.json() == {"upserted": 0, "deleted": 1}
    assert client.get("/v1/products/api-test-1").status_code == 404


# --- OpenAI-compatible ---------------------------------------------------------------------
def test_openai_chat_completions(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "gold necklace"}], "user": "oa-1"}
    answer = client.post("/v1/chat/completions", json=body).json()
    content = answer["choices"][0]["message"]["content"]
    assert answer["object"] == "chat.completion" and content
    for product in answer["bijou"]["products"]:
        assert product["title"] in content
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
    lines = [ln[6:] for ln in streamed.text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(ln) for ln in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()
    empty = client.post("/v1/chat/completions", json={"messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"
    system_only = {"messages": [{"role": "system", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=system_only).status_code == 400
