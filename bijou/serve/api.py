"""The shop-facing HTTP API (FastAPI): chat (server-sent events and WebSocket), voice, search,
products and images, sessions and carts, admin upserts, health, and an OpenAI-compatible
chat endpoint, and virtual try-on. Documented by its own OpenAPI schema at /docs.

The routes talk to a `Backend`: `LocalBackend` runs everything in this process (tests, small
shops); the Ray Serve app (`bijou.serve.app`) gives them deployment handles instead.
Every bad input is a 4xx with a `detail`; nothing a client sends can crash the process, and
no error body carries a traceback or a file path (an unexpected failure is a 500 with a
reference the log holds). Requests are limited per client (`bijou.serve.guard`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, Protocol

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    Header,
    HTTPException,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.exception_handlers import (
    http_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import HTTPConnection

from bijou.agent.agent import AgentEvent, ProductView, Reply, ReplyDone, TextDelta
from bijou.agent.memory import NotInCartError, UnknownSessionError
from bijou.agent.tools import CartItem, ToolCall, ToolResult
from bijou.catalog.media import ImageDecodeError, decode_image
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.modelfiles import ModelFileError
from bijou.retrieval.search import SearchRequest, SearchResult
from bijou.serve.guard import RateLimiter, RateLimitMiddleware
from bijou.serve.mcp import StreamableMCP, build_mcp
from bijou.serve.speech import AudioDecodeError, Transcript
from bijou.serve.tryon import OutputFormat, TryOnError, sizes_of

log = logging.getLogger(__name__)

# The widget and the demo shop page ship inside the package, so an installed wheel serves them.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
MAX_MESSAGE_CHARS = 2000
MAX_ERRORS_SHOWN = 3  # validation errors named in one detail
RETRY_AFTER_S = 2  # when a part of the service is restarting


class BackendUnavailableError(RuntimeError):
    """A part of the service is restarting (a replica was lost): the client may try again."""


class Backend(Protocol):
    """What the routes need; every method may block, so each is awaited."""

    async def ready(self) -> bool: ...
    async def create_session(self, shopper_id: str | None) -> str: ...
    async def latest_session(self, shopper_id: str) -> str: ...
    async def conversation(self, digest: str) -> str | None: ...
    async def remember_conversation(self, digest: str, session_id: str) -> None: ...
    async def chat(
        self, session_id: str, message: str, image: Image.Image | None
    ) -> AsyncIterator[AgentEvent]: ...
    async def transcribe(self, audio: bytes, language: str) -> Transcript: ...
    async def search(self, request: SearchRequest) -> SearchResult: ...
    async def product(self, product_id: str) -> Product | None: ...
    async def product_image(self, product_id: str) -> bytes | None: ...
    async def cart(self, session_id: str) -> list[CartItem]: ...
    async def add_to_cart(
        self, session_id: str, product_id: str, quantity: int
    ) -> list[CartItem]: ...
    async def remove_from_cart(self, session_id: str, product_id: str) -> list[CartItem]: ...
    async def clear_cart(self, session_id: str) -> None: ...
    async def delete_session(self, session_id: str) -> None: ...
    async def upsert(self, products: list[Product]) -> int: ...
    async def delete(self, product_ids: list[str]) -> int: ...
    async def try_on(self, photo: Image.Image, product: Product, fmt: OutputFormat) -> bytes: ...
    async def focus(self, session_id: str, product_id: str) -> None: ...
    async def tool(self, call: ToolCall) -> ToolResult: ...


# --- request and response models ---------------------------------------------------------
class SessionIn(BaseModel):
    shopper_id: str | None = Field(default=None, min_length=1, max_length=128)


class SessionOut(BaseModel):
    session_id: str


class ChatIn(BaseModel):
    session_id: str | None = None
    shopper_id: str | None = Field(default=None, min_length=1, max_length=128)
    message: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    image: str | None = Field(default=None, description="base64 JPEG/PNG, data: URL allowed")


class TranscriptOut(BaseModel):
    text: str
    language: str
    duration_s: float


class VoiceOut(BaseModel):
    session_id: str
    transcript: TranscriptOut
    reply: Reply


class SearchHit(ProductView):
    score: float
    image_url: str


class SearchOut(BaseModel):
    query: str
    relaxed: list[str]
    results: list[SearchHit]


class ProductOut(BaseModel):
    product: Product
    image_url: str


class CartIn(BaseModel):
    product_id: str = Field(min_length=1, max_length=200)
    quantity: int = Field(default=1, ge=1, le=99)


class CartOut(BaseModel):
    items: list[ProductView]
    total: float


class AdminIn(BaseModel):
    upsert: list[Product] = Field(default_factory=list, max_length=1000)
    delete: list[str] = Field(default_factory=list, max_length=10_000)

    @field_validator("upsert")
    @classmethod
    def _media_inside_the_store(cls, products: list[Product]) -> list[Product]:
        # The image route serves a product's image by its path: an absolute path or ".."
        # would let whoever holds the admin key read any file the server can.
        for product in products:
            for media in (product.image, product.video):
                if media and (PurePosixPath(media).is_absolute() or ".." in Path(media).parts):
                    raise ValueError(
                        f"product {product.id[:48]!r}: media paths are relative to the "
                        "shop's media store, without '..'"
                    )
        return products


class AdminOut(BaseModel):
    upserted: int
    deleted: int


class OpenAIMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | None = ""


class OpenAIChatIn(BaseModel):
    model: str = "bijou"
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    # The end user: a new conversation starts with their saved preferences.
    user: str | None = Field(default=None, min_length=1, max_length=128)
    # {"session_id": ...} (returned as bijou.session_id) continues a conversation: only its
    # holder can, as with every other endpoint.
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)


def backend_of(connection: HTTPConnection) -> Backend:
    """The app's backend, made on first use (on the replica, under Ray)."""
    return _backend(connection.app)


def _backend(app: FastAPI) -> Backend:
    state = app.state
    if state.backend is None:
        state.backend = state.backend_factory()
    return state.backend


Shop = Annotated[Backend, Depends(backend_of)]


def _cart_out(items: list[CartItem]) -> CartOut:
    return CartOut(
        items=[ProductView.of(i.product, quantity=i.quantity) for i in items],
        total=round(sum(i.product.price * i.quantity for i in items), 2),
    )


def image_url(product_id: str) -> str:
    return f"/v1/products/{product_id}/image"


def _decode_photo(data: bytes, limit: int) -> Image.Image:
    if len(data) > limit:
        raise HTTPException(413, f"image too large: {len(data)} bytes (limit {limit})")
    try:
        return decode_image(data)
    except ImageDecodeError as exc:
        raise HTTPException(400, str(exc)) from exc


def _b64_photo(text: str, limit: int) -> Image.Image:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    if len(payload) > limit * 4 // 3 + 4:
        raise HTTPException(413, f"image too large (limit {limit} bytes)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(400, "image is not valid base64") from exc
    return _decode_photo(data, limit)


def _sse(event: str, data: BaseModel | dict[str, object]) -> str:
    body = data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data)
    return f"event: {event}\ndata: {body}\n\n"


def config_of(connection: HTTPConnection) -> BijouConfig:
    return connection.app.state.config


Settings = Annotated[BijouConfig, Depends(config_of)]


def _photo_of(body: ChatIn, config: BijouConfig) -> Image.Image | None:
    return _b64_photo(body.image, config.serve.max_upload_bytes) if body.image else None


health = APIRouter(tags=["health"])


# --- health -----------------------------------------------------------------------
@health.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        ok = await backend_of(request).ready()
    except Exception:  # a backend that cannot even load is not ready; the log says why
        log.exception("readiness check failed")
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ready" if ok else "loading"}, status_code=200 if ok else 503)


carts = APIRouter(tags=["carts"])


# --- sessions and carts -------------------------------------------------------------
@carts.post("/v1/sessions")
async def new_session(body: SessionIn, shop: Shop) -> SessionOut:
    return SessionOut(session_id=await shop.create_session(body.shopper_id))


@carts.get("/v1/sessions/{session_id}/cart")
async def get_cart(session_id: str, shop: Shop) -> CartOut:
    return _cart_out(await shop.cart(session_id))


@carts.post("/v1/sessions/{session_id}/cart")
async def add_cart(session_id: str, body: CartIn, shop: Shop) -> CartOut:
    if await shop.product(body.product_id) is None:
        raise HTTPException(404, f"no product {body.product_id}")
    try:
        return _cart_out(await shop.add_to_cart(session_id, body.product_id, body.quantity))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


@carts.delete("/v1/sessions/{session_id}", status_code=204)
async def forget_session(session_id: str, shop: Shop) -> Response:
    """The shopper's conversation, dialog state and cart, gone for good."""
    await shop.cart(session_id)  # an unknown session is a 404
    await shop.delete_session(session_id)
    return Response(status_code=204)


@carts.delete("/v1/sessions/{session_id}/cart")
async def empty_cart(session_id: str, shop: Shop) -> CartOut:
    await shop.cart(session_id)
    await shop.clear_cart(session_id)
    return _cart_out([])


@carts.delete("/v1/sessions/{session_id}/cart/{product_id}")
async def remove_cart(session_id: str, product_id: str, shop: Shop) -> CartOut:
    try:
        return _cart_out(await shop.remove_from_cart(session_id, product_id))
    except NotInCartError as exc:
        raise HTTPException(404, f"{product_id} is not in the cart") from exc


chat = APIRouter(tags=["chat"])


# --- chat ---------------------------------------------------------------------------
async def _session(shop: Backend, session_id: str | None, shopper_id: str | None) -> str:
    if session_id:
        return session_id
    return await shop.create_session(shopper_id)


@chat.post(
    "/v1/chat",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_sse(body: ChatIn, shop: Shop, config: Settings) -> StreamingResponse:
    """Server-sent events: `session`, then `delta` pieces, then `reply` (or `error`)."""
    image = _photo_of(body, config)
    if not body.message.strip() and image is None:
        raise HTTPException(422, "send a message or a photo")
    session_id = await _session(shop, body.session_id, body.shopper_id)
    events = shop.chat(session_id, body.message, image)
    first = await _first_event(events)  # an unknown session is a 404, not a broken stream

    async def stream() -> AsyncIterator[str]:
        yield _sse("session", {"session_id": session_id})
        try:
            async for event in _chain(first, events):
                yield _event_sse(event)
        except Exception:  # the stream has started: report in-band
            log.exception("chat stream failed in session %s", session_id)
            yield _sse("error", {"detail": "the assistant failed; please send it again"})

    return StreamingResponse(stream(), media_type="text/event-stream")


@chat.websocket("/v1/chat/ws")
async def chat_ws(socket: WebSocket) -> None:
    """JSON messages in ({session_id?, shopper_id?, message, image?}); out: session,
    delta, reply and error objects with a "type"."""
    await socket.accept()
    shop, config = backend_of(socket), config_of(socket)
    limiter: RateLimiter = socket.app.state.rate_limiter
    client = limiter.client_of(socket.scope)
    try:
        while True:
            try:
                raw = await socket.receive_text()
            except KeyError:  # a binary frame: starlette finds no "text" in it
                await socket.send_json({"type": "error", "detail": "send JSON text frames"})
                continue
            try:
                if wait := limiter.take(client, "chat"):
                    await socket.send_json(
                        {"type": "error", "detail": limiter.detail, "retry_after": wait}
                    )
                    continue
                body = ChatIn.model_validate_json(raw)
                image = _photo_of(body, config)
                session_id = await _session(shop, body.session_id, body.shopper_id)
                events = shop.chat(session_id, body.message, image)
                first = await _first_event(events)  # an unknown session is an error first
                await socket.send_json({"type": "session", "session_id": session_id})
                async for event in _chain(first, events):
                    if isinstance(event, TextDelta):
                        await socket.send_json({"type": "delta", "text": event.text})
                    else:
                        reply = event.reply.model_dump(mode="json")
                        await socket.send_json({"type": "reply", "reply": reply})
            except ValidationError as exc:
                await socket.send_json({"type": "error", "detail": validation_detail(exc)})
            except HTTPException as exc:
                await socket.send_json({"type": "error", "detail": exc.detail})
            except UnknownSessionError:
                await socket.send_json({"type": "error", "detail": "unknown session"})
            except BackendUnavailableError:
                await socket.send_json({"type": "error", "detail": UNAVAILABLE})
            except Exception:  # one failed message must not close the shopper's socket
                log.exception("websocket chat message failed")
                await socket.send_json({"type": "error", "detail": "the assistant failed"})
    except WebSocketDisconnect:
        return


@chat.post("/v1/voice")
async def voice(
    shop: Shop,
    config: Settings,
    audio: Annotated[UploadFile, File(description="WAV, FLAC, OGG, MP3 or WebM/Opus")],
    session_id: Annotated[str | None, Form()] = None,
    shopper_id: Annotated[str | None, Form(max_length=128)] = None,
    language: Annotated[Literal["auto", "en", "zh"], Form()] = "auto",
) -> VoiceOut:
    """A spoken question: its transcript and the agent's reply to it."""
    data = await audio.read(config.speech.max_bytes + 1)
    transcript = await shop.transcribe(data, language)
    if not transcript.text.strip():
        raise HTTPException(422, "no speech was recognised in the recording")
    session = await _session(shop, session_id, shopper_id)
    reply = None
    async for event in shop.chat(session, transcript.text, None):
        if isinstance(event, ReplyDone):
            reply = event.reply
    assert reply is not None
    return VoiceOut(
        session_id=session,
        transcript=TranscriptOut(
            text=transcript.text,
            language=transcript.language,
            duration_s=transcript.duration_s,
        ),
        reply=reply,
    )


catalog = APIRouter(tags=["catalog"])


# --- search and products -----------------------------------------------------------
class SearchIn(BaseModel):
    """POST /v1/search as JSON: the same fields as the form, the photo as base64."""

    text: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    image: str | None = Field(default=None, description="base64 JPEG/PNG, data: URL allowed")
    top_k: int = Field(default=10, ge=1, le=100)


_SEARCH_JSON = {"application/json": {"schema": SearchIn.model_json_schema()}}


@catalog.post("/v1/search", openapi_extra={"requestBody": {"content": _SEARCH_JSON}})
async def search(
    request: Request,
    shop: Shop,
    config: Settings,
    text: Annotated[str, Form(max_length=MAX_MESSAGE_CHARS)] = "",
    image: Annotated[UploadFile | None, File(description="a photo to search by")] = None,
    top_k: Annotated[int, Form(ge=1, le=100)] = 10,
) -> SearchOut:
    """Text, a photo, or both: a multipart form (the photo as a file) or a JSON body (the
    photo as base64)."""
    photo = None
    limit = config.serve.max_upload_bytes
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = SearchIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        text, top_k = body.text, body.top_k
        photo = _b64_photo(body.image, limit) if body.image else None
    elif image is not None:
        photo = _decode_photo(await image.read(limit + 1), limit)
    if not text.strip() and photo is None:
        raise HTTPException(422, "send text, a photo, or both")
    result = await shop.search(SearchRequest(text=text, image=photo, top_k=top_k))
    return SearchOut(
        query=text,
        relaxed=list(result.relaxed),
        results=[
            SearchHit(
                **ProductView.of(r.product, rank=i, exact=r.exact).model_dump(),
                score=r.score,
                image_url=image_url(r.product.id),
            )
            for i, r in enumerate(result.results, 1)
        ],
    )


@catalog.get("/v1/products/{product_id}")
async def product(product_id: str, shop: Shop) -> ProductOut:
    found = await shop.product(product_id)
    if found is None:
        raise HTTPException(404, f"no product {product_id}")
    return ProductOut(product=found, image_url=image_url(product_id))


@catalog.get("/v1/products/{product_id}/image", response_class=Response)
async def product_image(product_id: str, shop: Shop) -> Response:
    data = await shop.product_image(product_id)
    if data is None:
        raise HTTPException(404, f"no image for product {product_id}")
    media = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    return Response(data, media_type=media, headers={"Cache-Control": "max-age=86400"})


admin = APIRouter(tags=["admin"])


# --- admin --------------------------------------------------------------------------
@admin.post("/v1/admin/products")
async def admin_products(
    body: AdminIn,
    shop: Shop,
    config: Settings,
    x_api_key: Annotated[str | None, Header()] = None,
) -> AdminOut:
    """Upsert and delete products (header X-API-Key: the configured admin key)."""
    expected = config.serve.admin_api_key
    if not expected:
        raise HTTPException(403, "admin API disabled: set serve.admin_api_key")
    if not x_api_key or not secrets.compare_digest(x_api_key, expected):
        raise HTTPException(401, "missing or wrong X-API-Key")
    upserted = await shop.upsert(body.upsert) if body.upsert else 0
    deleted = await shop.delete(body.delete) if body.delete else 0
    return AdminOut(upserted=upserted, deleted=deleted)


openai = APIRouter(tags=["openai"])
OPENAI_MODEL = "bijou"
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
REPLAYED_TURNS = 8  # of an unknown conversation's earlier user messages, the last ones


# --- OpenAI-compatible chat --------------------------------------------------------
class OpenAIError(HTTPException):
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None,
                 param: str | None = None) -> None:  # fmt: skip
        super().__init__(status, message)
        self.body = {"message": message, "type": kind, "param": param, "code": code}


def openai_error_body(status: int, message: str, param: str | None = None) -> dict[str, object]:
    kind = {401: "authentication_error", 404: "invalid_request_error", 429: "rate_limit_error"}
    code = {404: "not_found", 413: "request_too_large"}.get(status)
    error_type = kind.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


@openai.get("/v1/models")
async def models() -> dict[str, object]:
    """The one model this server answers as (OpenAI's model list)."""
    model = {"id": OPENAI_MODEL, "object": "model", "created": 0, "owned_by": "bijou"}
    return {"object": "list", "data": [model]}


def _digest(user: str | None, messages: list[OpenAIMessage]) -> str:
    """Names a conversation by its user and assistant messages (system prompts vary)."""
    spoken = [(m.role, m.content or "") for m in messages if m.role in ("user", "assistant")]
    return hashlib.sha256(json.dumps([user, spoken], ensure_ascii=False).encode()).hexdigest()


async def _conversation_session(shop: Backend, body: OpenAIChatIn) -> str:
    """The session the request's conversation continues: the one whose reply it quotes;
    else a new one (the shopper's, with their preferences, when `user` is given) that first
    hears the earlier user messages, so a conversation begun elsewhere keeps its context."""
    earlier = body.messages[:-1]
    if any(m.role == "assistant" for m in earlier):
        known = await shop.conversation(_digest(body.user, earlier))
        if known is not None:
            return known
    session = await shop.create_session(body.user)
    said = [m.content or "" for m in earlier if m.role == "user" and (m.content or "").strip()]
    for message in said[-REPLAYED_TURNS:]:
        async for _ in shop.chat(session, message[:MAX_MESSAGE_CHARS], None):
            pass
    return session


@openai.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: OpenAIChatIn, shop: Shop) -> JSONResponse | StreamingResponse:
    """OpenAI chat completions. The conversation is the request's `messages` (the last one
    is the shopper's turn). `metadata.session_id` (returned as `bijou.session_id`)
    continues a session; else the session whose reply the messages quote, else a new one
    that first hears the earlier user messages. `user` is the returning shopper's id, whose
    preferences carry over; it never opens a conversation by itself (it is not a secret)."""
    if body.model != OPENAI_MODEL:
        raise OpenAIError(404, f"The model {body.model!r} does not exist; use {OPENAI_MODEL!r}",
                          "invalid_request_error", "model_not_found", "model")  # fmt: skip
    last = body.messages[-1]
    message = last.content or ""
    if last.role != "user" or not message.strip():
        raise OpenAIError(400, "the last message must be the user's, with text",
                          "invalid_request_error", param="messages")  # fmt: skip
    if len(message) > MAX_MESSAGE_CHARS:
        raise OpenAIError(413, f"message longer than {MAX_MESSAGE_CHARS} characters",
                          "invalid_request_error", "request_too_large", "messages")  # fmt: skip
    session = body.metadata.get("session_id") or await _conversation_session(shop, body)
    events = shop.chat(session, message, None)
    first = await _first_event(events)
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [choice],
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def remember(reply: Reply) -> None:
        said = OpenAIMessage(role="assistant", content=reply.text)
        await shop.remember_conversation(_digest(body.user, [*body.messages, said]), session)

    if body.stream:

        async def stream() -> AsyncIterator[str]:
            yield chunk({"role": "assistant"}, None)
            async for event in _chain(first, events):
                if isinstance(event, TextDelta):
                    yield chunk({"content": event.text}, None)
                else:
                    await remember(event.reply)
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")
    reply = None
    async for event in _chain(first, events):
        if isinstance(event, ReplyDone):
            reply = event.reply
    assert reply is not None
    await remember(reply)
    return JSONResponse(
        {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "bijou": reply.model_dump(mode="json"),
        }
    )


tryon = APIRouter(tags=["tryon"])


# --- virtual try-on ---------------------------------------------------------------
class TryOnInfo(BaseModel):
    articles: list[str] = Field(description="the articles that can be tried on")
    privacy: str


PRIVACY = "The photo is used for that one try-on only: it is never written to disk or logged."


@tryon.get("/v1/tryon")
async def try_on_info(config: Settings) -> TryOnInfo:
    """What can be tried on (the widget shows "Try it on" on those cards)."""
    return TryOnInfo(articles=list(sizes_of(config.tryon).articles), privacy=PRIVACY)


class TryOnFields(BaseModel):
    product_id: str = Field(min_length=1, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    format: OutputFormat = "jpeg"


class InMemoryMultiPart(MultiPartParser):
    """Starlette's multipart parser with uploads kept in memory: by default it spools a file
    over 1 MB to a temporary file on disk, where a shopper's photo must never go."""

    spool_max_size = 0  # SpooledTemporaryFile's max_size 0: never rolled over to disk


async def _bounded(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise HTTPException(413, f"request too large (limit {limit} bytes)")
        yield chunk


TRYON_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["photo", "product_id"],
                    "properties": {
                        "photo": {"type": "string", "format": "binary",
                                  "description": "the shopper's photo (JPEG, PNG, WebP)"},
                        "product_id": {"type": "string"},
                        "session_id": {"type": "string"},
                        "format": {"type": "string", "enum": ["jpeg", "png"], "default": "jpeg"},
                    },
                }
            }
        },
    }
}  # fmt: skip


@tryon.post(
    "/v1/tryon",
    response_class=Response,
    openapi_extra=TRYON_FORM,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}}},
        422: {"description": "no face, several faces, a face too small, or not wearable"},
    },
)
async def try_on(request: Request, shop: Shop, config: Settings) -> Response:
    """The product (earrings, a necklace, a pendant or a jewellery set) drawn on the photo.

    Multipart fields: `photo` (a file), `product_id`, optionally `session_id` and `format`.
    The photo is used for this request only: parsed in memory, never written to disk or
    logged. With a session, the conversation's focus becomes the product ("add it to my
    cart")."""
    limit = config.serve.max_upload_bytes
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "send multipart/form-data: a photo file and a product_id")
    # The photo's limit, and room for the other fields and the part headers.
    parser = InMemoryMultiPart(
        request.headers, _bounded(request.stream(), limit + 64_000), max_files=1, max_fields=8
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, exc.message) from exc
    try:
        photo = form.get("photo")
        if not isinstance(photo, StarletteUpload):
            raise HTTPException(422, "send the photo as a file field named 'photo'")
        try:
            fields = TryOnFields.model_validate(
                {k: v for k, v in form.multi_items() if isinstance(v, str)}
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise HTTPException(422, f"{where}: {error['msg']}") from exc
        image = _decode_photo(await photo.read(limit + 1), limit)
    finally:
        await form.close()
    found = await shop.product(fields.product_id)
    if found is None:
        raise HTTPException(404, f"no product {fields.product_id}")
    if fields.session_id:
        await shop.cart(fields.session_id)  # an unknown session is a 404 before any work
    data = await shop.try_on(image, found, fields.format)
    if fields.session_id:
        await shop.focus(fields.session_id, fields.product_id)
    return Response(
        data, media_type=f"image/{fields.format}", headers={"Cache-Control": "no-store"}
    )


ROUTERS = (health, carts, chat, catalog, admin, openai, tryon)


def create_app(config: BijouConfig, backend_factory: Callable[[], Backend]) -> FastAPI:
    """The app; ``backend_factory`` runs once, on first use (in the replica, under Ray)."""
    mcp: StreamableMCP | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp.lifespan())
            yield

    app = FastAPI(
        title="Bijou",
        version="0.1.0",
        description="Conversational shopping for jewelry shops: chat, voice, photo search.",
        # A body is refused (413) as it arrives, before a byte past the limit is read.
        max_body_size=config.serve.max_body_bytes,
        lifespan=lifespan,
    )
    limiter = RateLimiter(config.serve.rate_limit)
    # The last added is the outermost: CORS headers go on a 429 too (the widget reads it),
    # and a client over its limit costs nothing past them.
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=config.serve.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.state.config = config
    app.state.backend_factory = backend_factory
    app.state.backend = None
    app.state.rate_limiter = limiter

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if request.url.path not in OPENAI_PATHS:
            return await http_exception_handler(request, exc)
        body = getattr(exc, "body", None) or openai_error_body(exc.status_code, str(exc.detail))
        return JSONResponse(body if "error" in body else {"error": body},
                            status_code=exc.status_code)  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path not in OPENAI_PATHS:
            # FastAPI's own body echoes the input back: a megabyte of it, for a huge request.
            return JSONResponse({"detail": validation_detail(exc)}, status_code=422)
        error = exc.errors()[0]
        param = ".".join(str(p) for p in error.get("loc", ())[1:]) or None
        # OpenAI answers a malformed request with 400, not FastAPI's 422.
        return JSONResponse(openai_error_body(400, error.get("msg", "invalid request"), param),
                            status_code=400)  # fmt: skip

    @app.exception_handler(UnknownSessionError)
    async def unknown_session(request: Request, exc: UnknownSessionError) -> JSONResponse:
        return JSONResponse({"detail": "unknown session; start a new one"}, status_code=404)

    @app.exception_handler(AudioDecodeError)
    async def bad_audio(request: Request, exc: AudioDecodeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413 if exc.too_large else 400)

    @app.exception_handler(BackendUnavailableError)
    async def unavailable(request: Request, exc: BackendUnavailableError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse({"detail": UNAVAILABLE}, status_code=503, headers=headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        reference = uuid.uuid4().hex[:12]
        log.error(
            "%s %s failed (reference %s)",
            request.method,
            request.url.path,
            reference,
            exc_info=exc,
        )
        detail = f"internal error; the shop's log has the details (reference {reference})"
        return JSONResponse({"detail": detail}, status_code=500)

    @app.exception_handler(TryOnError)
    async def cannot_try_on(request: Request, exc: TryOnError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "reason": exc.reason}, status_code=422)

    @app.exception_handler(ModelFileError)
    async def model_missing(request: Request, exc: ModelFileError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    for router in ROUTERS:
        app.include_router(router)
    if config.serve.mcp:
        # The same tools for any AI assistant (streamable HTTP); see bijou.serve.mcp.
        mcp = StreamableMCP(build_mcp(config, lambda: _backend(app)), config.serve.host)
        app.router.add_route("/mcp", mcp, methods=["GET", "POST", "DELETE"],
                             include_in_schema=False)  # fmt: skip
    # The widget and the demo shop page.
    app.mount("/widget", StaticFiles(directory=WEB_DIR), name="widget")

    @app.get("/", include_in_schema=False)
    async def demo_shop() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    return app


UNAVAILABLE = "a part of the shop is restarting; please try again in a moment"


def validation_detail(error: RequestValidationError | ValidationError) -> str:
    """What was wrong, where, without echoing the input: "body.message: String should have
    at most 2000 characters"."""
    parts = []
    for item in error.errors()[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in item.get("loc", ()))
        message = item.get("msg", "invalid")
        if context := (item.get("ctx") or {}).get("error"):
            message = f"{message} ({str(context)[:80]})"
        parts.append(f"{where}: {message}" if where else message)
    more = len(error.errors()) - MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


async def _first_event(events: AsyncIterator[AgentEvent]) -> AgentEvent:
    """The first event, so errors before any output (unknown session) become HTTP errors."""
    try:
        return await anext(events)
    except StopAsyncIteration as exc:
        raise HTTPException(500, "the assistant returned nothing") from exc


async def _chain(first: AgentEvent, rest: AsyncIterator[AgentEvent]) -> AsyncIterator[AgentEvent]:
    yield first
    async for event in rest:
        yield event


def _event_sse(event: AgentEvent) -> str:
    if isinstance(event, TextDelta):
        return _sse("delta", {"text": event.text})
    return _sse("reply", event.reply)
