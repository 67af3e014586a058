"""The chat widget (web/) in a real browser: Debian's Chromium driven by Playwright, against
the real app (bijou.serve.api) served by uvicorn on the small catalog with the real models.

Each test leaves a screenshot in $BIJOU_SCREENSHOTS (docs/screenshots to refresh the README's
pictures), else in the temp folder, so a test run leaves the tree clean. Chromium captures
"microphone" audio from a WAV file that espeak-ng synthesizes. Skipped where Chromium or
Playwright is missing (apt-get install chromium; pip install playwright; no `playwright
install` needed).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import wave
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bijou.catalog.loader import BUNDLED_IMAGES
from bijou.catalog.schema import Product

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(
    os.environ.get("BIJOU_SCREENSHOTS") or Path(tempfile.gettempdir()) / "bijou-screenshots"
)
REPLY_MS = 120_000  # an LLM reply on 2 busy cores, with room to spare
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps calling out to Google's services on a closed network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VOICE_QUERY = "silver earrings"
WIDGET = "document.querySelector('#bijou-widget').shadowRoot"  # JS: the widget's shadow root

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(autouse=True, scope="module")
def _chromium(needs_service) -> None:
    needs_service(Path(CHROMIUM).exists(), "no Chromium browser (apt-get install chromium)")


# --- the app ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(small_engine, finder, chat_model, tmp_path_factory) -> Iterator[str]:
    """The real app with the in-process backend, served on a free localhost port."""
    import uvicorn

    from bijou.agent.agent import ShoppingAgent
    from bijou.agent.memory import SessionStore
    from bijou.retrieval.shop import LocalShop
    from bijou.serve.api import create_app
    from bijou.serve.local import LocalBackend
    from bijou.serve.speech import SpeechToText

    folder = tmp_path_factory.mktemp("browser")
    config = small_engine.config.model_copy(update={"data_dir": folder})
    store = SessionStore(folder / "sessions.sqlite3")
    agent = ShoppingAgent(config, LocalShop(small_engine, finder), store, chat_model)
    backend = LocalBackend(agent, small_engine, SpeechToText.load(config))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, lambda: backend), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, name="bijou-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    # Load the models before the first test's clock starts.
    assert httpx.get(f"{url}/readyz", timeout=120).status_code == 200
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


# --- the browser --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def query_wav(tmp_path_factory, espeak: str) -> tuple[Path, float]:
    """A spoken query and its length in seconds."""
    folder = tmp_path_factory.mktemp("voice")
    spoken, path = folder / "spoken.wav", folder / "query.wav"
    subprocess.run(
        [espeak, "-v", "en-us", "-s", "140", "-w", str(spoken), VOICE_QUERY],
        check=True,
        capture_output=True,
    )
    # Half a second of silence first, as a person takes a moment after pressing the button:
    # the fake microphone starts playing when it opens, a little before the recorder runs.
    with wave.open(str(spoken)) as clip:
        params, frames = clip.getparams(), clip.readframes(clip.getnframes())
    lead = b"\0" * (params.sampwidth * params.nchannels * params.framerate // 2)
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(lead + frames)
    frame_bytes = params.sampwidth * params.nchannels
    return path, (len(lead) + len(frames)) / frame_bytes / params.framerate


@pytest.fixture(scope="module")
def browser(query_wav: tuple[Path, float]) -> Iterator[object]:
    wav, _ = query_wav
    fake_media = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    ]
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + fake_media
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    """A fresh browser profile (no stored session) at desktop size; fails on page errors."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, permissions=["microphone"], locale="en-US"
    )
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _shot(tab, name: str) -> None:
    tab.wait_for_function(  # product images loaded (or failed over to their placeholder)
        f"() => [...{WIDGET}.querySelectorAll('img')]"
        ".every(i => !i.getAttribute('src') || i.complete)"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def _open(tab, url: str) -> None:
    tab.goto(url)
    tab.locator(".bijou-launcher").click()
    tab.locator(".bijou-panel").wait_for(state="visible")
    tab.wait_for_function(  # the health check came back fine
        f"() => {WIDGET}.querySelector('.bijou-banner').hidden"
    )


def _idle(tab) -> None:
    """Wait until no reply is in flight."""
    tab.wait_for_function(
        f"() => {WIDGET}.querySelector('.bijou-log').getAttribute('aria-busy') === 'false'",
        timeout=REPLY_MS,
    )


def _ask(tab, text: str) -> None:
    tab.locator(".bijou-input").fill(text)
    tab.locator(".bijou-input").press("Enter")
    tab.locator(".bijou-msg--bot").nth(1).wait_for(timeout=10_000)  # the welcome is the 0th
    _idle(tab)


def _rupees(text: str) -> float:
    match = re.search(r"₹([\d,]+(?:\.\d+)?)", text)
    assert match, text
    return float(match.group(1).replace(",", ""))


def _session(tab) -> str:
    return tab.evaluate(
        "() => JSON.parse(Object.entries(sessionStorage).find(([k]) => k.endsWith(':session'))[1])"
    )


# --- the tests ----------------------------------------------------------------------------
def test_typed_request_streams_text_then_shows_product_cards(page, app_url: str) -> None:
    _open(page, app_url)
    log = page.locator(".bijou-log")
    assert log.get_attribute("aria-live") == "polite"
    assert page.locator(".bijou-chip").count() >= 3  # quick replies at the start
    # Record whether the reply's bubble ever showed text while still streaming.
    page.evaluate(
        """() => {
          const root = document.querySelector('#bijou-widget').shadowRoot;
          window.__streamed = [];
          new MutationObserver(() => {
            const live = root.querySelector('.bijou-msg--streaming .bijou-bubble__text');
            if (live && live.textContent) window.__streamed.push(live.textContent.length);
          }).observe(root.querySelector('.bijou-log'),
                     {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )
    _ask(page, "silver earrings under 2000")
    assert page.locator(".bijou-msg--user .bijou-bubble").last.inner_text().strip() == (
        "silver earrings under 2000"
    )
    cards = page.locator(".bijou-card--product")
    assert cards.count() >= 1
    for i in range(cards.count()):
        card = cards.nth(i)
        assert card.locator(".bijou-card__title").inner_text().strip()
        assert _rupees(card.locator(".bijou-card__price").inner_text()) <= 2000
        assert card.locator(".bijou-card__reason").inner_text().strip()
        assert card.locator("img").get_attribute("src").endswith("/image")
    # Product images came from the API and decoded.
    page.wait_for_function(
        f"() => [...{WIDGET}.querySelectorAll('.bijou-card--product img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.evaluate("window.__streamed.length") >= 1, "no text appeared before the reply"
    assert page.locator(".bijou-msg--bot .bijou-bubble__text").last.inner_text().strip()
    assert page.locator(".bijou-chip[data-chip=pair]").is_visible()  # follow-up chips
    _shot(page, "01-text-request")


def test_photo_upload_finds_the_product(page, app_url: str, small_products, tmp_path) -> None:
    product: Product = next(p for p in small_products if p.article == "Earrings")
    photo = tmp_path / "photo.jpg"
    with zipfile.ZipFile(BUNDLED_IMAGES) as images:
        photo.write_bytes(images.read(product.image))
    _open(page, app_url)
    with page.expect_file_chooser() as chooser:
        page.locator(".bijou-camera").click()
    chooser.value.set_files(str(photo))
    page.locator(".bijou-attach").wait_for(state="visible")
    page.locator(".bijou-send").click()
    page.locator(".bijou-msg--user .bijou-bubble__photo").wait_for()
    _idle(page)
    cards = page.locator(".bijou-card--product")
    assert cards.count() >= 1
    ids = [cards.nth(i).get_attribute("data-product-id") for i in range(cards.count())]
    assert product.id in ids, (product.id, ids)
    _shot(page, "02-photo-search")


def test_try_it_on_places_the_earrings_on_a_selfie(page, app_url: str, tmp_path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    import matplotlib
    from PIL import Image

    selfie, cat = tmp_path / "selfie.jpg", tmp_path / "cat.jpg"
    # A real portrait (matplotlib's Grace Hopper, 512x600) and a real cat.
    Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").save(selfie)
    Image.fromarray(skimage_data.chelsea()).save(cat, quality=92)
    _open(page, app_url)
    _ask(page, "silver earrings")
    buttons = page.locator(".bijou-card--product .bijou-tryon:visible")
    assert buttons.count() >= 1
    with page.expect_file_chooser() as chooser:
        buttons.first.click()
    assert "never stored" in page.locator(".bijou-note").last.inner_text()
    chooser.value.set_files(str(selfie))
    picture = page.locator(".bijou-tryon__photo")
    picture.wait_for(timeout=REPLY_MS)
    page.wait_for_function(
        f"() => {WIDGET}.querySelector('.bijou-tryon__photo').naturalWidth === 512"
    )
    bubble = page.locator(".bijou-msg--bot").last
    assert "never stored" in bubble.locator(".bijou-tryon__note").inner_text()
    assert bubble.locator(".bijou-add").is_visible()
    # The photo and the result stay out of the browser's storage.
    assert "Try on" not in page.evaluate("() => JSON.stringify(sessionStorage)")
    _shot(page, "08-tryon")
    # Another photo, with no face in it: the server's reason, in the chat.
    with page.expect_file_chooser() as chooser:
        bubble.get_by_text("Use another photo").click()
    chooser.value.set_files(str(cat))
    page.locator(".bijou-msg--error").last.wait_for(timeout=REPLY_MS)
    assert "no face" in page.locator(".bijou-msg--error").last.inner_text()
    _shot(page, "09-tryon-no-face")


def test_hold_to_talk_shows_the_transcript_then_products(
    page, app_url: str, query_wav: tuple[Path, float]
) -> None:
    _, seconds = query_wav
    _open(page, app_url)
    mic = page.locator(".bijou-mic")
    assert mic.get_attribute("aria-disabled") != "true"
    box = mic.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    # The timer shows once the recorder runs; then hold for the clip and a little silence.
    page.locator(".bijou-status").filter(has_text=re.compile(r"\d:\d\d")).wait_for()
    assert mic.get_attribute("aria-pressed") == "true"
    _shot(page, "03-voice-recording")
    page.wait_for_timeout(int(seconds * 1000) + 800)
    page.mouse.up()
    _idle(page)
    heard = page.locator(".bijou-msg--user .bijou-bubble__text").last.inner_text()
    assert "earring" in heard.lower(), heard
    assert page.locator(".bijou-msg--user .bijou-bubble__voice").count() == 1
    assert page.locator(".bijou-msg--error").count() == 0
    assert page.locator(".bijou-card--product").count() >= 1
    _shot(page, "03-voice-reply")

    # The same from the keyboard: Space held on the focused mic button.
    mic.focus()
    page.keyboard.down(" ")
    page.locator(".bijou-status").filter(has_text=re.compile(r"\d:\d\d")).wait_for()
    page.wait_for_timeout(int(seconds * 1000) + 800)
    page.keyboard.up(" ")
    page.locator(".bijou-msg--user").nth(1).wait_for()
    _idle(page)
    heard = page.locator(".bijou-msg--user .bijou-bubble__text").last.inner_text()
    assert "earring" in heard.lower(), heard
    assert page.locator(".bijou-msg--error").count() == 0


def test_add_to_cart_updates_the_count_and_the_cart_view(page, app_url: str) -> None:
    _open(page, app_url)
    _ask(page, "silver earrings")
    first = page.locator(".bijou-card--product").first
    title = first.locator(".bijou-card__title").inner_text().strip()
    product_id = first.get_attribute("data-product-id")
    first.locator(".bijou-add").click()
    badge = page.locator(".bijou-cart-btn .bijou-badge")
    page.wait_for_function(
        f"() => {WIDGET}.querySelector('.bijou-cart-btn .bijou-badge').textContent === '1'"
    )
    assert badge.is_visible()
    assert page.locator(".bijou-cart-btn").get_attribute("aria-label") == "Cart, 1 items"
    # The server's cart holds it too.
    cart = httpx.get(f"{app_url}/v1/sessions/{_session(page)}/cart").json()
    assert [item["id"] for item in cart["items"]] == [product_id]

    page.locator(".bijou-cart-btn").click()
    item = page.locator(".bijou-cart__item")
    item.wait_for()
    assert title in item.inner_text()
    assert "Qty 1" in item.inner_text()
    assert _rupees(page.locator(".bijou-cart__total-value").inner_text()) == cart["total"]
    _shot(page, "04-cart")

    item.locator(".bijou-remove").click()
    page.locator(".bijou-cart__empty").wait_for(state="visible")
    assert not badge.is_visible()
    assert httpx.get(f"{app_url}/v1/sessions/{_session(page)}/cart").json()["items"] == []


def test_phone_width_full_screen_and_keyboard_only(browser, app_url: str) -> None:
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        is_mobile=True,
        has_touch=True,
        locale="en-US",
        reduced_motion="reduce",  # no opening animation to measure mid-way
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(app_url)
        page.locator(".bijou-launcher").wait_for(state="visible")
        focused = f"() => {WIDGET}.activeElement?.className"
        for _ in range(40):  # Tab through the shop page to the launcher
            page.keyboard.press("Tab")
            if "bijou-launcher" in (page.evaluate(focused) or ""):
                break
        else:
            pytest.fail("the launcher is not reachable with Tab")
        page.keyboard.press("Enter")
        panel = page.locator(".bijou-panel")
        panel.wait_for(state="visible")
        box = {k: round(v) for k, v in panel.bounding_box().items()}
        assert box == {"x": 0, "y": 0, "width": 360, "height": 740}  # full screen
        page.wait_for_function(f"() => ({focused})() === 'bijou-input'")
        page.keyboard.type("gold necklace")
        page.keyboard.press("Enter")
        page.locator(".bijou-msg--bot").nth(1).wait_for()
        _idle(page)
        assert page.locator(".bijou-msg--bot .bijou-bubble").last.inner_text().strip()
        # Tab moves on from the message box to the mic and send buttons, focus visibly ringed.
        page.locator(".bijou-input").focus()
        page.keyboard.press("Tab")
        assert page.evaluate(focused).startswith("bijou-icon-btn bijou-mic")
        ring = page.evaluate(f"() => getComputedStyle({WIDGET}.activeElement).outlineStyle")
        assert ring == "solid"
        _shot(page, "05-phone")
        page.keyboard.press("Escape")
        panel.wait_for(state="hidden")
        assert "bijou-launcher" in page.evaluate(focused)
    finally:
        context.close()


def test_server_down_shows_a_banner_with_retry(browser, app_url: str) -> None:
    closed = _free_port()  # nothing listens there
    shop = (
        "<!doctype html><html><head><title>Another shop</title></head><body>"
        "<h1>Another shop</h1>"
        f'<script src="{app_url}/widget/bijou.js" data-api="http://127.0.0.1:{closed}" '
        'data-lang="en" data-open="true" defer></script></body></html>'
    )
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        # A page the app does not have, answered by the browser itself.
        page.route(
            f"{app_url}/another-shop.html",
            lambda route: route.fulfill(status=200, content_type="text/html", body=shop),
        )
        page.goto(f"{app_url}/another-shop.html")
        banner = page.locator(".bijou-banner")
        banner.wait_for(state="visible")
        assert "Can't reach" in banner.inner_text()
        page.locator(".bijou-input").fill("silver earrings")
        page.locator(".bijou-input").press("Enter")
        error = page.locator(".bijou-msg--error")
        error.wait_for()
        assert "couldn't reach the shop" in error.inner_text()
        page.locator(".bijou-banner__retry").click()
        page.wait_for_function(f"() => !{WIDGET}.querySelector('.bijou-banner__retry').disabled")
        assert banner.is_visible()
        _shot(page, "06-server-down")
    finally:
        context.close()


def test_microphone_denied_disables_the_mic_with_a_message(browser, app_url: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        # The shopper said no. (Chromium's fake media UI still hands out the fake device, so
        # the widget must heed the permission state, as it does when a browser reports it.)
        cdp = context.new_cdp_session(page)
        own = cdp.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
        cdp.send(
            "Browser.setPermission",
            {
                "permission": {"name": "microphone"},
                "setting": "denied",
                "origin": app_url,
                "browserContextId": own,
            },
        )
        _open(page, app_url)
        mic = page.locator(".bijou-mic")
        mic.focus()
        page.keyboard.down(" ")
        page.keyboard.up(" ")
        note = page.locator(".bijou-note--warn")
        note.wait_for()
        assert "microphone is blocked" in note.inner_text()
        assert mic.get_attribute("aria-disabled") == "true"
        assert "blocked" in mic.get_attribute("title")
        assert page.locator(".bijou-msg--user").count() == 0  # nothing was sent
        _shot(page, "07-mic-denied")
    finally:
        context.close()
