"""The Ray Serve application itself: every deployment started from serve.yaml's options on a
local Ray, composed by handles, answering over real HTTP. About two minutes on 2 cores."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from bijou.catalog.loader import load_catalog
from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders
from bijou.retrieval.search import SearchEngine

SERVE_YAML = Path(__file__).parent.parent / "bijou" / "serve" / "serve.yaml"
PORT = 18_765
ADMIN_KEY = "ray-admin-key"


@pytest.fixture(scope="module")
def app_url(
    small_catalog: Path, encoders: Encoders, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ray = pytest.importorskip("ray")
    from ray import serve

    from bijou.serve.app import APP_NAME, build_app

    data_dir = tmp_path_factory.mktemp("ray-app")
    settings = {
        "data_dir": str(data_dir),
        "catalog": {"path": str(small_catalog)},
        "llm": {"threads": 1},
        "serve": {"admin_api_key": ADMIN_KEY, "rate_limit": {"enabled": False}},
    }
    # The replicas open the index, so it is built (and closed) here first.
    engine = SearchEngine.load(BijouConfig.model_validate(settings), encoders)
    engine.sync(load_catalog(small_catalog).products)
    engine.index.close()

    spec = yaml.safe_load(SERVE_YAML.read_text())["applications"][0]
    overrides = {d.pop("name"): d for d in spec["deployments"]}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        serve.run(build_app({"config": settings}, overrides), name=APP_NAME, route_prefix="/")
        yield f"http://127.0.0.1:{PORT}"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_every_deployment_answers_over_http(app_url: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=app_url, timeout=120) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        found = client.post("/v1/search", data={"text": "silver earrings", "top_k": 3}).json()
        assert found["results"]
        product = found["results"][0]
        image = client.get(product["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"

        chat = client.post("/v1/chat", json={"message": "a gold necklace under 5000"})
        events = [b for b in chat.text.split("\n\n") if b.startswith("event: reply")]
        reply = json.loads(events[0].split("data: ", 1)[1])
        assert all(p["price"] <= 5000 for p in reply["products"])
        session = reply["session_id"]
        cart = client.post(f"/v1/sessions/{session}/cart", json={"product_id": product["id"]})
        assert [i["id"] for i in cart.json()["items"]] == [product["id"]]
        assert client.post("/v1/chat", json={"message": "", "image": "!!"}).status_code == 400

        # Try-on through its own deployment: a real portrait, then a cat (no face, a 422).
        skimage_data = pytest.importorskip("skimage.data")
        from PIL import Image

        def jpeg(array) -> bytes:
            out = io.BytesIO()
            Image.fromarray(array).save(out, "JPEG")
            return out.getvalue()

        earrings = next(r for r in found["results"] if r["article"] == "Earrings")
        for photo, status in ((skimage_data.astronaut(), 200), (skimage_data.chelsea(), 422)):
            files = {"photo": ("me.jpg", jpeg(photo), "image/jpeg")}
            tried = client.post(
                "/v1/tryon", files=files, data={"product_id": earrings["id"], "session_id": session}
            )
            assert tried.status_code == status, tried.text
        assert tried.json()["reason"] == "no_face"

        espeak = shutil.which("espeak-ng")
        if espeak:
            wav = tmp_path / "q.wav"
            subprocess.run(
                [
                    espeak,
                    "-v",
                    "en-us+f3",
                    "-s",
                    "140",
                    "-w",
                    str(wav),
                    "silver earrings under two thousand rupees",
                ],
                check=True,
            )
            files = {"audio": ("q.wav", wav.read_bytes(), "audio/wav")}
            voice = client.post("/v1/voice", files=files, data={"language": "en"})
            assert voice.status_code == 200, voice.text
            assert "earring" in voice.json()["transcript"]["text"].lower()


def test_errors_through_the_deployments_are_clean_4xx(app_url: str) -> None:
    """An error raised in a replica reaches the client as the same 4xx as in one process,
    without the remote traceback; a product without an image is upserted (it was a 500:
    the image encoder's client stacked an empty batch)."""
    with httpx.Client(base_url=app_url, timeout=120) as client:
        unknown = client.post("/v1/chat", json={"message": "rings", "session_id": "0" * 32})
        assert unknown.status_code == 404 and "Traceback" not in unknown.text
        cart = client.get(f"/v1/sessions/{'0' * 32}/cart")
        assert cart.status_code == 404 and ".py" not in cart.text
        plain = {"id": "ray-plain-1", "title": "Plain Steel Band", "article": "Ring",
                 "price": 499, "list_price": 599}  # fmt: skip
        headers = {"X-API-Key": ADMIN_KEY}
        upsert = client.post("/v1/admin/products", json={"upsert": [plain]}, headers=headers)
        assert upsert.status_code == 200, upsert.text
        assert client.get("/v1/products/ray-plain-1").json()["product"]["title"] == plain["title"]
        gone = client.post("/v1/admin/products", json={"delete": ["ray-plain-1"]}, headers=headers)
        assert gone.json() == {"upserted": 0, "deleted": 1}
