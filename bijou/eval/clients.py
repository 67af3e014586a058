"""How a dialog evaluation reaches an agent: in this process (`InProcessClient`), over the
shop's HTTP API as the chat widget does (`HttpClient`), or only its catalog, to judge
recorded replies again (`CatalogClient`). A failed request is a failed turn, never a crash."""

from __future__ import annotations

import base64
import mimetypes
import time
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from bijou.agent.agent import Reply, ShoppingAgent, TextDelta
from bijou.catalog.schema import Product
from bijou.config import BijouConfig

if typing.TYPE_CHECKING:
    import httpx

    from bijou.serve.speech import SpeechToText

from bijou.eval.scenarios import Turn


# --- talking to the agent --------------------------------------------------------------------
class TurnResult(BaseModel):
    """What one turn brought back, from either client."""

    reply: Reply | None = None
    transcript: str | None = None  # voice turns
    first_token_s: float | None = None
    total_s: float = 0.0
    cart_before: list[str] = Field(default_factory=list)  # product ids, one per unit
    cart_after: list[str] = Field(default_factory=list)
    error: str | None = None


class DialogClient(Protocol):
    """One agent, however it is reached. ``product`` and ``search`` read the catalog, for the
    groundedness check; both may raise on a failed request."""

    name: str

    def start(self) -> str: ...
    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult: ...
    def product(self, product_id: str) -> Product | None: ...
    def search(self, text: str) -> list[Product]: ...
    def close(self) -> None: ...


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _units(pairs: Iterable[tuple[str, int]]) -> list[str]:
    return sorted(pid for pid, quantity in pairs for _ in range(max(quantity, 1)))


class InProcessClient:
    """The agent in this process: ``agent.stream`` timed to its first `TextDelta`."""

    name = "in-process"

    def __init__(
        self, agent: ShoppingAgent, speech: SpeechToText | None = None, *, owns: bool = False
    ) -> None:
        self.agent = agent
        self._speech = speech
        self._owns = owns

    @classmethod
    def load(cls, config: BijouConfig, engine: Any = None) -> InProcessClient:
        return cls(ShoppingAgent.load(config, engine), owns=True)

    @property
    def speech(self) -> SpeechToText:
        if self._speech is None:
            from bijou.serve.speech import SpeechToText

            self._speech = SpeechToText.load(self.agent.config)
        return self._speech

    def start(self) -> str:
        return self.agent.start_session(None)

    def _cart(self, session_id: str) -> list[str]:
        return _units(
            (line.product_id, line.quantity) for line in self.agent.store.cart(session_id)
        )

    def _image(self, turn: Turn) -> Any:
        from bijou.catalog.media import decode_image

        if pid := turn.catalog_image:
            product = self.agent.shop.get(pid)
            if product is None:
                raise LookupError(f"no product {pid} in the catalog")
            image = self.agent.shop.image(product)
            if image is None:
                raise LookupError(f"product {pid} has no image")
            return image
        return decode_image(Path(turn.image or "").read_bytes())

    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult:
        result = TurnResult()
        start = time.perf_counter()
        try:
            result.cart_before = self._cart(session_id)
            message, image = turn.user or "", None
            start = time.perf_counter()  # a voice turn's times include its transcription
            if turn.audio:
                heard = self.speech.transcribe_query(Path(turn.audio).read_bytes(), language)
                result.transcript = message = heard.text
                if not message.strip():
                    raise ValueError("no speech was recognised in the recording")
            elif turn.image:
                image = self._image(turn)
                start = time.perf_counter()  # like a photo already uploaded
            for event in self.agent.stream(session_id, message, image):
                if isinstance(event, TextDelta):
                    if result.first_token_s is None and event.text:
                        result.first_token_s = time.perf_counter() - start
                else:
                    result.reply = event.reply
            result.total_s = time.perf_counter() - start
            if result.reply is None:
                raise RuntimeError("the agent's stream ended without a reply")
            result.cart_after = self._cart(session_id)
        except Exception as exc:  # a failed turn, never a failed run
            result.error = _error_text(exc)
            result.total_s = result.total_s or time.perf_counter() - start
        return result

    def product(self, product_id: str) -> Product | None:
        return self.agent.shop.get(product_id)

    def search(self, text: str) -> list[Product]:
        from bijou.retrieval.search import SearchRequest

        return [r.product for r in self.agent.shop.search(SearchRequest(text=text)).results]

    def close(self) -> None:
        if self._owns:
            self.agent.close()


class ClientError(RuntimeError):
    """A request to the shop failed."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:200]


RATE_LIMIT_WAITS = 5  # a shop's 429 is waited out (its Retry-After) this many times
MAX_RETRY_AFTER_S = 60.0


def _waited_out(response: httpx.Response, attempt: int) -> bool:
    """True when the shop answered "too many requests" and its Retry-After was waited."""
    if response.status_code != 429 or attempt == RATE_LIMIT_WAITS:
        return False
    try:
        wait = float(response.headers.get("retry-after", "1"))
    except ValueError:
        wait = 1.0
    time.sleep(min(max(wait, 0.0), MAX_RETRY_AFTER_S))
    return True


class HttpClient:
    """A running shop, through the widget's HTTP API. ``client``: an `httpx.Client` to use
    instead of a new one (a FastAPI TestClient in tests)."""

    def __init__(
        self, url: str, *, timeout_s: float = 120.0, client: httpx.Client | None = None
    ) -> None:
        import httpx

        self.name = url
        self.base = url.rstrip("/")
        self._own = client is None
        self.http = client or httpx.Client(timeout=httpx.Timeout(timeout_s))

    def _url(self, path: str) -> str:
        return f"{self.base}{path}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        for attempt in range(RATE_LIMIT_WAITS + 1):
            try:
                response = self.http.request(method, self._url(path), **kwargs)
            except httpx.HTTPError as exc:
                raise ClientError(f"{method} {path}: {_error_text(exc)}") from exc
            if not _waited_out(response, attempt):
                break
        if response.status_code >= 400:
            raise ClientError(f"{method} {path}: HTTP {response.status_code}: {_detail(response)}")
        return response

    def start(self) -> str:
        return str(self._request("POST", "/v1/sessions", json={}).json()["session_id"])

    def _cart(self, session_id: str) -> list[str]:
        items = self._request("GET", f"/v1/sessions/{session_id}/cart").json()["items"]
        return _units((item["id"], int(item.get("quantity") or 1)) for item in items)

    def _image_b64(self, turn: Turn) -> str:
        if pid := turn.catalog_image:
            data = self._request("GET", f"/v1/products/{pid}/image").content
        else:
            data = Path(turn.image or "").read_bytes()
        return base64.b64encode(data).decode("ascii")

    def _voice(self, session_id: str, turn: Turn, language: str, result: TurnResult) -> None:
        path = Path(turn.audio or "")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = self._request(
            "POST",
            "/v1/voice",
            files={"audio": (path.name, path.read_bytes(), kind)},
            data={"session_id": session_id, "language": language},
        ).json()
        result.transcript = str(body["transcript"]["text"])
        result.reply = Reply.model_validate(body["reply"])

    def _chat(self, session_id: str, turn: Turn, result: TurnResult, start: float) -> None:
        import httpx

        body: dict[str, object] = {"session_id": session_id, "message": turn.user or ""}
        if turn.image:
            body["image"] = self._image_b64(turn)
        try:
            for attempt in range(RATE_LIMIT_WAITS + 1):
                with self.http.stream("POST", self._url("/v1/chat"), json=body) as response:
                    if response.status_code >= 400:
                        response.read()
                        if _waited_out(response, attempt):
                            start = time.perf_counter()  # the turn, not the wait
                            continue
                        raise ClientError(
                            f"POST /v1/chat: HTTP {response.status_code}: {_detail(response)}"
                        )
                    for event, data in _sse_events(response.iter_lines()):
                        if event == "delta" and result.first_token_s is None:
                            result.first_token_s = time.perf_counter() - start
                        elif event == "reply":
                            result.reply = Reply.model_validate_json(data)
                        elif event == "error":
                            raise ClientError(
                                f"POST /v1/chat: the stream reported an error: {data}"
                            )
                    break
        except httpx.HTTPError as exc:
            raise ClientError(f"POST /v1/chat: {_error_text(exc)}") from exc
        if result.reply is None:
            raise ClientError("POST /v1/chat: the stream ended without a reply")

    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult:
        result = TurnResult()
        start = time.perf_counter()
        try:
            result.cart_before = self._cart(session_id)
            start = time.perf_counter()
            if turn.audio:
                self._voice(session_id, turn, language, result)
            else:
                self._chat(session_id, turn, result, start)
            result.total_s = time.perf_counter() - start
            result.cart_after = self._cart(session_id)
        except Exception as exc:  # HTTP errors, timeouts, bad JSON: a failed turn
            result.error = _error_text(exc)
            result.total_s = result.total_s or time.perf_counter() - start
        return result

    def product(self, product_id: str) -> Product | None:
        import httpx

        try:
            response = self.http.get(self._url(f"/v1/products/{product_id}"))
        except httpx.HTTPError as exc:
            raise ClientError(f"GET /v1/products/{product_id}: {_error_text(exc)}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ClientError(f"GET /v1/products/{product_id}: HTTP {response.status_code}")
        return Product.model_validate(response.json()["product"])

    def search(self, text: str) -> list[Product]:
        hits = self._request("POST", "/v1/search", data={"text": text, "top_k": 10}).json()
        found = []
        for hit in hits["results"]:
            product = self.product(hit["id"])
            if product is not None:
                found.append(product)
        return found

    def close(self) -> None:
        if self._own:
            self.http.close()


def _sse_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield event, "\n".join(data)


class CatalogClient:
    """Only the catalog side of a client: what judging recorded replies needs."""

    name = "catalog"

    def __init__(self, shop: Any) -> None:
        self.shop = shop

    def start(self) -> str:
        raise NotImplementedError("a catalog client runs no dialog")

    def turn(self, session_id: str, turn: Turn, language: str) -> TurnResult:
        raise NotImplementedError("a catalog client runs no dialog")

    def product(self, product_id: str) -> Product | None:
        return self.shop.get(product_id)

    def search(self, text: str) -> list[Product]:
        from bijou.retrieval.search import SearchRequest

        return [r.product for r in self.shop.search(SearchRequest(text=text)).results]

    def close(self) -> None:
        self.shop.close()
