/*! Bijou chat widget. Embed with one tag, no build step:
 *
 *   <script src="https://shop.example/widget/bijou.js" defer
 *           data-api="https://shop.example"   (API base URL; default: this script's origin)
 *           data-lang="en"                    (en | zh; default: the browser's language)
 *           data-shopper="c-1042"             (optional returning-shopper id)
 *           data-open="true"></script>        (open the chat at load)
 *
 * Everything lives in one shadow root under <div id="bijou-widget">, styled by bijou.css
 * (loaded from next to this script), so the shop's CSS and the widget's cannot clash. Shops
 * can theme it through CSS custom properties on #bijou-widget (--bijou-accent, --bijou-ink...).
 * Server text is only ever set with textContent: never parsed as HTML.
 * window.Bijou = {open(), close(), ask(text), lang} lets the page drive it.
 */
(() => {
  "use strict";
  if (window.Bijou && window.Bijou.version) return; // embedded twice: keep the first

  // --- configuration -------------------------------------------------------------------
  const script =
    document.currentScript ||
    Array.from(document.querySelectorAll("script[src]")).find((s) =>
      /\/bijou(\.min)?\.js([?#]|$)/.test(s.src),
    );
  const scriptUrl = new URL(script ? script.src : "bijou.js", document.baseURI);
  const data = (script && script.dataset) || {};
  const API = (data.api ? new URL(data.api, document.baseURI).href : scriptUrl.origin).replace(
    /\/+$/,
    "",
  );
  const CSS_URL = new URL("bijou.css", scriptUrl).href;
  const LANG = pickLanguage(data.lang);
  const SHOPPER = (data.shopper || "").trim() || null;
  const OPEN_AT_LOAD = data.open === "true";
  const STORE_KEY = `bijou:${API}`;
  const MAX_VOICE_S = 30;
  const MIN_VOICE_MS = 400;
  const MAX_LOG = 40;
  const HEALTH_TIMEOUT_MS = 5000;
  const RETRY_EVERY_MS = 15000;
  const PHOTO_TYPES = ["image/jpeg", "image/png"];
  const PHOTO_MAX_BYTES = 4 * 1024 * 1024;
  const PHOTO_MAX_SIDE = 1600;

  function pickLanguage(asked) {
    const lang = (asked || navigator.language || "en").toLowerCase();
    return lang.startsWith("zh") ? "zh" : "en";
  }

  // --- UI strings: every piece of UI text, one dictionary per language -----------------
  const STRINGS = {
    en: {
      open: "Open the shopping assistant",
      launcher: "Ask Bijou",
      title: "Bijou",
      subtitle: "Your jewelry shopping assistant",
      panel: "Bijou shopping assistant chat",
      close: "Close chat",
      newChat: "Start a new conversation",
      cart: "Cart",
      cartCount: "Cart, {n} items",
      welcome:
        "Hi, I'm Bijou! Tell me what you're looking for (a gift, a budget, a colour) or show me a photo.",
      messages: "Conversation",
      you: "You said",
      bot: "Bijou said",
      placeholder: "Ask about jewelry…",
      inputLabel: "Your message",
      send: "Send",
      photo: "Search by photo",
      photoAttached: "Photo attached. Add a message or press Send.",
      photoAlt: "Your photo",
      removePhoto: "Remove the photo",
      photoBad: "I can't read that file. Please choose a JPEG or PNG photo.",
      mic: "Hold to talk",
      micHint: "Hold the mic button while you speak, then let go.",
      micStarting: "Starting the microphone…",
      listening: "Listening… let go to send",
      transcribing: "Listening back…",
      voiceMessage: "Voice message",
      voiceEmpty: "I didn't catch that. Please try again, a little closer to the microphone.",
      micDenied:
        "The microphone is blocked, so voice is off. You can still type, or allow the microphone in your browser's site settings and reload.",
      micDeniedTip: "Microphone blocked: allow it in your browser's site settings",
      micMissing: "No microphone was found, so voice is off. You can still type.",
      micUnsupported: "Voice input isn't supported in this browser",
      typing: "Bijou is typing",
      whyFits: "Why it fits",
      was: "was {amount}",
      closeMatch: "Close match",
      goesWith: "Goes well with",
      pairsWith: "Pairs with {title}",
      bundle: "Complete the look",
      yourPick: "Your pick",
      setTotal: "Set total",
      budget: "budget {amount}",
      addSet: "Add the set to cart",
      addToCart: "Add to cart",
      addLabel: "Add {title} to cart",
      adding: "Adding…",
      added: "Added ✓",
      addedSay: "{title} added to your cart.",
      cartTitle: "Your cart",
      cartEmpty: "Your cart is empty.",
      cartLoading: "Loading your cart…",
      qty: "Qty {n}",
      total: "Total",
      remove: "Remove",
      removeLabel: "Remove {title} from cart",
      removedSay: "{title} removed from your cart.",
      backToChat: "Back to chat",
      offline: "Can't reach the shop assistant right now.",
      starting: "Bijou is still getting ready. Try again in a moment.",
      retry: "Retry",
      checking: "Checking…",
      networkError: "I couldn't reach the shop. Please check your connection and try again.",
      apiError: "Sorry, {detail}",
      genericError: "Sorry, something went wrong ({status}). Please try again.",
      interrupted: "Sorry, the reply was cut off. Please try again.",
      busy: "Please wait for the current reply.",
      chips: {
        gifts: "Gifts under ₹2,000",
        silver: "Silver earrings",
        pair: "What goes with the first one?",
        cart: "View cart",
      },
      suggestions: "Suggestions",
      tryOn: "Try it on",
      tryOnLabel: "Try {title} on your photo",
      tryOnAsk: "Try on {title}",
      tryOnAlt: "{title} tried on your photo",
      tryOnCaption: "{title} on your photo.",
      tryOnPrivacy: "Your photo is used for this try-on only: it is never stored or logged.",
      tryOnChoose: "Choose a photo of your face, or take a selfie, to try it on. {privacy}",
      tryOnOther: "Use another photo",
      tryOnWorking: "Placing it on your photo…",
    },
    zh: {
      open: "打开购物助手",
      launcher: "问问Bijou",
      title: "Bijou",
      subtitle: "您的珠宝购物助手",
      panel: "Bijou购物助手聊天",
      close: "关闭聊天",
      newChat: "开始新的对话",
      cart: "购物车",
      cartCount: "购物车，{n}件商品",
      welcome: "您好，我是Bijou！告诉我您想找什么（礼物、预算、颜色），或者给我看一张照片。",
      messages: "对话",
      you: "您说",
      bot: "Bijou说",
      placeholder: "问问珠宝饰品…",
      inputLabel: "您的消息",
      send: "发送",
      photo: "拍照搜索",
      photoAttached: "照片已添加。可以再写一句话，或直接点发送。",
      photoAlt: "您的照片",
      removePhoto: "移除照片",
      photoBad: "无法读取这个文件，请选择JPEG或PNG照片。",
      mic: "按住说话",
      micHint: "说话时请按住麦克风按钮，说完再松开。",
      micStarting: "正在打开麦克风…",
      listening: "正在听…松开即发送",
      transcribing: "正在识别…",
      voiceMessage: "语音消息",
      voiceEmpty: "没听清楚，请靠近麦克风再试一次。",
      micDenied: "麦克风已被阻止，语音功能已关闭。您仍可以打字，或在浏览器的网站设置中允许麦克风后刷新页面。",
      micDeniedTip: "麦克风已被阻止：请在浏览器的网站设置中允许",
      micMissing: "没有找到麦克风，语音功能已关闭。您仍可以打字。",
      micUnsupported: "此浏览器不支持语音输入",
      typing: "Bijou正在输入",
      whyFits: "推荐理由",
      was: "原价{amount}",
      closeMatch: "相近推荐",
      goesWith: "搭配推荐",
      pairsWith: "搭配 {title}",
      bundle: "整套搭配",
      yourPick: "您选的",
      setTotal: "整套合计",
      budget: "预算 {amount}",
      addSet: "整套加入购物车",
      addToCart: "加入购物车",
      addLabel: "把{title}加入购物车",
      adding: "正在加入…",
      added: "已加入 ✓",
      addedSay: "{title}已加入购物车。",
      cartTitle: "您的购物车",
      cartEmpty: "购物车是空的。",
      cartLoading: "正在加载购物车…",
      qty: "数量 {n}",
      total: "合计",
      remove: "移除",
      removeLabel: "从购物车移除{title}",
      removedSay: "{title}已从购物车移除。",
      backToChat: "返回聊天",
      offline: "暂时连接不上购物助手。",
      starting: "Bijou还在准备中，请稍后再试。",
      retry: "重试",
      checking: "正在检查…",
      networkError: "连接不上商店，请检查网络后再试。",
      apiError: "抱歉，{detail}",
      genericError: "抱歉，出了点问题（{status}），请再试一次。",
      interrupted: "抱歉，回复中断了，请再试一次。",
      busy: "请等当前回复完成。",
      chips: {
        gifts: "2000卢比以内的礼物",
        silver: "银色耳环",
        pair: "第一个配什么？",
        cart: "查看购物车",
      },
      suggestions: "推荐问题",
      tryOn: "试戴",
      tryOnLabel: "用您的照片试戴{title}",
      tryOnAsk: "试戴{title}",
      tryOnAlt: "{title}戴在您照片上的效果",
      tryOnCaption: "{title}的试戴效果。",
      tryOnPrivacy: "您的照片只用于这次试戴，不会被保存或记录。",
      tryOnChoose: "请选择一张您的正脸照片或自拍来试戴。{privacy}",
      tryOnOther: "换一张照片",
      tryOnWorking: "正在为您试戴…",
    },
  };
  const S = STRINGS[LANG];

  function t(key, vars) {
    let text = key.split(".").reduce((o, k) => (o == null ? o : o[k]), S);
    if (text == null) text = key;
    if (vars) for (const [k, v] of Object.entries(vars)) text = text.split(`{${k}}`).join(String(v));
    return text;
  }

  function price(value) {
    const n = Number(value) || 0;
    const opts = Number.isInteger(n)
      ? { maximumFractionDigits: 0 }
      : { minimumFractionDigits: 2, maximumFractionDigits: 2 };
    return `₹${n.toLocaleString("en-US", opts)}`;
  }

  // --- DOM helpers: text always goes in as text nodes ----------------------------------
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  // Static icon markup (ours, never the server's).
  const ICONS = {
    chat: '<path d="M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6A.5.5 0 0 1 5 19.2V16h-.5A.5.5 0 0 1 4 15.5z"/><path d="M12 6.3l1 2.2 2.3.3-1.7 1.6.5 2.3-2.1-1.2-2.1 1.2.5-2.3-1.7-1.6 2.3-.3z" fill="currentColor" stroke="none"/>',
    close: '<path d="M6 6l12 12M18 6L6 18"/>',
    cart: '<path d="M3 4h2l2.2 10.2a1.5 1.5 0 0 0 1.5 1.2h8.6a1.5 1.5 0 0 0 1.5-1.1L20.5 8H6.2"/><circle cx="9.5" cy="19.5" r="1.3"/><circle cx="17" cy="19.5" r="1.3"/>',
    camera: '<path d="M4 8.5A1.5 1.5 0 0 1 5.5 7h2.2l1.5-2h5.6l1.5 2h2.2A1.5 1.5 0 0 1 20 8.5v9a1.5 1.5 0 0 1-1.5 1.5h-13A1.5 1.5 0 0 1 4 17.5z"/><circle cx="12" cy="13" r="3.5"/>',
    mic: '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21M8.5 21h7"/>',
    send: '<path d="M4 12l16-8-6 16-2.5-6.5z"/><path d="M11.5 13.5L20 4"/>',
    refresh: '<path d="M4 12a8 8 0 0 1 14-5.3M20 4v4.5h-4.5M20 12a8 8 0 0 1-14 5.3M4 20v-4.5h4.5"/>',
    back: '<path d="M15 5l-7 7 7 7"/>',
    alert: '<circle cx="12" cy="12" r="9"/><path d="M12 7.5v5.5M12 16.2v.3"/>',
  };

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "bijou-icon");
    svg.innerHTML = ICONS[name]; // constant markup above
    return svg;
  }

  // --- session storage: a reload continues the conversation ---------------------------
  const store = {
    get(key, fallback = null) {
      try {
        const raw = sessionStorage.getItem(`${STORE_KEY}:${key}`);
        return raw == null ? fallback : JSON.parse(raw);
      } catch {
        return fallback;
      }
    },
    set(key, value) {
      try {
        if (value == null) sessionStorage.removeItem(`${STORE_KEY}:${key}`);
        else sessionStorage.setItem(`${STORE_KEY}:${key}`, JSON.stringify(value));
      } catch {
        /* storage full or disabled: the conversation just won't survive a reload */
      }
    },
  };

  // --- state --------------------------------------------------------------------------
  const state = {
    session: store.get("session"),
    log: store.get("log", []),
    cart: { items: [], total: 0 },
    open: false,
    busy: false,
    view: "chat",
    offline: false,
    photo: null, // {data, thumb, name}
    // Try-on: the articles the server can place (GET /v1/tryon), and the shopper's selfie,
    // kept in this page's memory only (never in storage), reused until they choose another.
    tryon: { articles: new Set(), selfie: null, pending: null },
    lastHadProducts: false,
    mic: { blocked: false, reason: "" },
    rec: null,
    retryTimer: 0,
  };

  let restoring = false;

  // --- building the widget ------------------------------------------------------------
  const host = h("div", { id: "bijou-widget", class: "bijou-host", "data-lang": LANG });
  host.style.display = "none"; // until the stylesheet has loaded: no flash of raw markup
  const shadow = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  const sheet = h("link", { rel: "stylesheet", href: CSS_URL });
  const reveal = () => host.style.removeProperty("display");
  sheet.addEventListener("load", reveal);
  sheet.addEventListener("error", reveal);

  const ui = {};
  ui.launcher = h(
    "button",
    {
      type: "button",
      class: "bijou-launcher",
      "aria-label": t("open"),
      "aria-expanded": "false",
      "aria-controls": "bijou-panel",
      onclick: () => openPanel(),
    },
    icon("chat"),
    h("span", { class: "bijou-launcher__label", text: t("launcher") }),
    h("span", { class: "bijou-badge bijou-launcher__badge", hidden: true, "aria-hidden": "true" }),
  );

  ui.cartCount = h("span", { class: "bijou-badge", "aria-hidden": "true", text: "0" });
  ui.cartBtn = h(
    "button",
    {
      type: "button",
      class: "bijou-icon-btn bijou-cart-btn",
      "aria-label": t("cartCount", { n: 0 }),
      title: t("cart"),
      onclick: () => (state.view === "cart" ? showChat() : showCart()),
    },
    icon("cart"),
    ui.cartCount,
  );
  ui.header = h(
    "header",
    { class: "bijou-header" },
    h(
      "div",
      { class: "bijou-brand" },
      h("span", { class: "bijou-logo", "aria-hidden": "true", text: "◆" }),
      h(
        "div",
        {},
        h("h2", { class: "bijou-title", id: "bijou-title", text: t("title") }),
        h("p", { class: "bijou-subtitle", text: t("subtitle") }),
      ),
    ),
    h(
      "button",
      {
        type: "button",
        class: "bijou-icon-btn bijou-new",
        "aria-label": t("newChat"),
        title: t("newChat"),
        onclick: () => newConversation(),
      },
      icon("refresh"),
    ),
    ui.cartBtn,
    h(
      "button",
      {
        type: "button",
        class: "bijou-icon-btn bijou-close",
        "aria-label": t("close"),
        title: t("close"),
        onclick: () => closePanel(),
      },
      icon("close"),
    ),
  );

  ui.bannerText = h("span", { class: "bijou-banner__text", text: t("offline") });
  ui.retry = h("button", {
    type: "button",
    class: "bijou-btn bijou-btn--small bijou-banner__retry",
    text: t("retry"),
    onclick: () => checkHealth(true),
  });
  ui.banner = h(
    "div",
    { class: "bijou-banner", role: "alert", hidden: true },
    icon("alert"),
    ui.bannerText,
    ui.retry,
  );

  ui.log = h("div", {
    class: "bijou-log",
    role: "log",
    "aria-live": "polite",
    "aria-label": t("messages"),
    tabindex: "-1",
  });
  ui.chips = h("div", { class: "bijou-chips", role: "group", "aria-label": t("suggestions") });

  ui.file = h("input", {
    type: "file",
    accept: "image/jpeg,image/png,image/*",
    class: "bijou-file",
    tabindex: "-1",
    "aria-hidden": "true",
    onchange: (e) => attachPhoto(e.target.files && e.target.files[0]),
  });
  ui.selfieFile = h("input", {
    type: "file",
    accept: "image/*",
    capture: "user", // a phone opens its front camera
    class: "bijou-file",
    tabindex: "-1",
    "aria-hidden": "true",
    onchange: (e) => chooseSelfie(e.target.files && e.target.files[0]),
  });
  ui.camera = h(
    "button",
    {
      type: "button",
      class: "bijou-icon-btn bijou-camera",
      "aria-label": t("photo"),
      title: t("photo"),
      onclick: () => ui.file.click(),
    },
    icon("camera"),
  );
  ui.attachImg = h("img", { class: "bijou-attach__img", alt: t("photoAlt") });
  ui.attach = h(
    "div",
    { class: "bijou-attach", hidden: true },
    ui.attachImg,
    h("span", { class: "bijou-attach__text", text: t("photoAttached") }),
    h(
      "button",
      {
        type: "button",
        class: "bijou-icon-btn bijou-icon-btn--small bijou-attach__remove",
        "aria-label": t("removePhoto"),
        title: t("removePhoto"),
        onclick: () => {
          clearPhoto();
          ui.input.focus();
        },
      },
      icon("close"),
    ),
  );
  ui.input = h("textarea", {
    class: "bijou-input",
    rows: "1",
    maxlength: "2000",
    placeholder: t("placeholder"),
    "aria-label": t("inputLabel"),
    autocomplete: "off",
    enterkeyhint: "send",
  });
  ui.micTip = h("span", { class: "bijou-sr", id: "bijou-mic-tip" });
  ui.mic = h(
    "button",
    {
      type: "button",
      class: "bijou-icon-btn bijou-mic",
      "aria-label": t("mic"),
      "aria-pressed": "false",
      "aria-describedby": "bijou-mic-tip",
      title: t("mic"),
    },
    icon("mic"),
  );
  ui.send = h(
    "button",
    { type: "submit", class: "bijou-send", "aria-label": t("send"), title: t("send") },
    icon("send"),
  );
  ui.status = h("div", { class: "bijou-status", hidden: true });
  ui.form = h(
    "form",
    { class: "bijou-composer", onsubmit: onSubmit },
    ui.attach,
    ui.status,
    h("div", { class: "bijou-composer__row" }, ui.camera, ui.file, ui.selfieFile, ui.input, ui.mic, ui.send, ui.micTip),
  );
  ui.chat = h("div", { class: "bijou-chat" }, ui.log, ui.chips, ui.form);

  ui.cartHeading = h("h3", { class: "bijou-cart__title", tabindex: "-1", text: t("cartTitle") });
  ui.cartList = h("ul", { class: "bijou-cart__list" });
  ui.cartEmpty = h("p", { class: "bijou-cart__empty", text: t("cartEmpty") });
  ui.cartTotal = h("strong", { class: "bijou-cart__total-value", text: price(0) });
  ui.cartView = h(
    "section",
    { class: "bijou-cart", hidden: true, "aria-labelledby": "bijou-cart-title" },
    h(
      "div",
      { class: "bijou-cart__head" },
      h(
        "button",
        {
          type: "button",
          class: "bijou-icon-btn bijou-cart__back",
          "aria-label": t("backToChat"),
          title: t("backToChat"),
          onclick: () => showChat(),
        },
        icon("back"),
      ),
      ui.cartHeading,
    ),
    ui.cartEmpty,
    ui.cartList,
    h(
      "div",
      { class: "bijou-cart__foot" },
      h("span", { text: t("total") }),
      ui.cartTotal,
    ),
  );
  ui.cartHeading.id = "bijou-cart-title";
  ui.announcer = h("div", { class: "bijou-sr", "aria-live": "polite", role: "status" });

  ui.panel = h(
    "section",
    {
      class: "bijou-panel",
      id: "bijou-panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": "bijou-title",
      hidden: true,
    },
    ui.header,
    ui.banner,
    ui.chat,
    ui.cartView,
    ui.announcer,
  );
  ui.root = h("div", { class: "bijou-root", lang: LANG === "zh" ? "zh-CN" : "en" }, ui.launcher, ui.panel);
  shadow.append(sheet, ui.root);

  // --- panel --------------------------------------------------------------------------
  function openPanel() {
    if (state.open) return;
    state.open = true;
    ui.panel.hidden = false;
    ui.launcher.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "true");
    ui.root.classList.add("bijou-root--open");
    checkHealth(false);
    scrollDown(true);
    requestAnimationFrame(() => (state.view === "cart" ? ui.cartHeading : ui.input).focus());
  }

  function closePanel() {
    if (!state.open) return;
    if (state.rec) stopRecording(true);
    state.open = false;
    ui.panel.hidden = true;
    ui.launcher.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "false");
    ui.root.classList.remove("bijou-root--open");
    clearTimeout(state.retryTimer);
    ui.launcher.focus();
  }

  ui.root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.open) {
      e.preventDefault();
      if (state.rec) stopRecording(true);
      else if (state.view === "cart") showChat();
      else closePanel();
    } else if (e.key === "Tab" && state.open && isFullScreen()) {
      trapFocus(e); // full screen on a phone: the page behind is out of reach
    }
  });

  function isFullScreen() {
    return window.matchMedia("(max-width: 480px)").matches;
  }

  function trapFocus(e) {
    const focusables = Array.from(
      ui.panel.querySelectorAll("button, textarea, input:not(.bijou-file), [tabindex='0']"),
    ).filter((el) => !el.disabled && el.offsetParent !== null);
    if (!focusables.length) return;
    const first = focusables[0];
    const last = focusables[focusables.length - 1];
    const active = shadow.activeElement;
    if (e.shiftKey && active === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  }

  function showCart() {
    state.view = "cart";
    ui.chat.hidden = true;
    ui.cartView.hidden = false;
    ui.cartBtn.setAttribute("aria-pressed", "true");
    renderCart();
    ui.cartHeading.focus();
    refreshCart();
  }

  function showChat() {
    state.view = "chat";
    ui.cartView.hidden = true;
    ui.chat.hidden = false;
    ui.cartBtn.setAttribute("aria-pressed", "false");
    scrollDown(true);
    ui.input.focus();
  }

  function announce(text) {
    ui.announcer.textContent = "";
    setTimeout(() => (ui.announcer.textContent = text), 50);
  }

  // --- network ------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, { network = false, status = 0, detail = "" } = {}) {
      super(message);
      this.network = network;
      this.status = status;
      this.detail = detail;
    }
  }

  // The server forgot the session (a restart, an expiry): a 404 that names the session.
  function lostSession(err) {
    return err instanceof ApiError && err.status === 404 && /session/i.test(err.detail);
  }

  async function api(path, options = {}) {
    let res;
    try {
      res = await fetch(API + path, { credentials: "same-origin", ...options });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      setOffline(true);
      throw new ApiError(t("networkError"), { network: true });
    }
    if (state.offline && res.status < 500) setOffline(false);
    return res;
  }

  async function failure(res) {
    let detail = null;
    try {
      detail = (await res.json()).detail;
    } catch {
      /* not JSON */
    }
    if (Array.isArray(detail)) detail = detail.map((d) => d && d.msg).filter(Boolean).join("; ");
    if (detail && typeof detail === "object") detail = detail.message || JSON.stringify(detail);
    const message =
      typeof detail === "string" && detail.trim()
        ? t("apiError", { detail: politeDetail(detail) })
        : t("genericError", { status: res.status });
    return new ApiError(message, { status: res.status, detail: typeof detail === "string" ? detail : "" });
  }

  function politeDetail(detail) {
    const text = detail.trim().replace(/\s+/g, " ");
    const lower = LANG === "zh" ? text : text.charAt(0).toLowerCase() + text.slice(1);
    return /[.!?。！？]$/.test(lower) ? lower : lower + (LANG === "zh" ? "。" : ".");
  }

  function setOffline(offline, message) {
    state.offline = offline;
    ui.banner.hidden = !offline;
    ui.bannerText.textContent = message || t("offline");
    ui.retry.disabled = false;
    ui.retry.textContent = t("retry");
    clearTimeout(state.retryTimer);
    if (offline && state.open) state.retryTimer = setTimeout(() => checkHealth(false), RETRY_EVERY_MS);
  }

  async function checkHealth(manual) {
    if (manual) {
      ui.retry.disabled = true;
      ui.retry.textContent = t("checking");
    }
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
    try {
      const res = await fetch(`${API}/healthz`, { signal: ctl.signal, cache: "no-store" });
      if (!res.ok) throw new Error(`healthz ${res.status}`);
      const ready = await fetch(`${API}/readyz`, { signal: ctl.signal, cache: "no-store" });
      if (ready.status === 503) setOffline(true, t("starting"));
      else setOffline(false);
    } catch {
      setOffline(true);
    } finally {
      clearTimeout(timer);
    }
    if (manual && !state.offline) ui.input.focus();
  }

  async function* events(res) {
    // Server-sent events over fetch: EventSource cannot POST. Lines end in \n, \r\n or \r.
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let type = "";
    let lines = [];
    const take = (line) => {
      if (line.startsWith(":")) return; // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") lines.push(value);
    };
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        throw new ApiError(t("interrupted"), { network: true });
      }
      buffer += chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
      for (;;) {
        const m = /\r\n|\n|\r/.exec(buffer);
        if (!m) break;
        if (m[0] === "\r" && m.index === buffer.length - 1 && !chunk.done) break; // \r|\n split
        const line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line !== "") take(line);
        else if (lines.length) {
          yield { event: type || "message", data: lines.join("\n") };
          type = "";
          lines = [];
        } else type = "";
      }
      if (chunk.done) break;
    }
    if (buffer) take(buffer); // a last event without its blank line
    if (lines.length) yield { event: type || "message", data: lines.join("\n") };
  }

  function setSession(id) {
    if (id && id !== state.session) {
      state.session = id;
      store.set("session", id);
    }
  }

  async function ensureSession() {
    if (state.session) return state.session;
    const res = await api("/v1/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ shopper_id: SHOPPER }),
    });
    if (!res.ok) throw await failure(res);
    setSession((await res.json()).session_id);
    return state.session;
  }

  function forgetSession() {
    state.session = null;
    store.set("session", null);
  }

  // --- messages -----------------------------------------------------------------------
  function remember(entry) {
    state.log.push(entry);
    if (state.log.length > MAX_LOG) state.log.splice(0, state.log.length - MAX_LOG);
    store.set("log", state.log);
  }

  function nearBottom() {
    const log = ui.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  }

  // A finished reply: its start in view (the cards below it), or the bottom if it all fits.
  // The question above it too when both fit in half the view (a photo, a short question).
  function showStart(msg) {
    const asked = msg.previousElementSibling;
    let top = msg.offsetTop;
    if (asked && asked.classList.contains("bijou-msg--user") && top - asked.offsetTop < ui.log.clientHeight / 2)
      top = asked.offsetTop;
    const bottom = ui.log.scrollHeight - ui.log.clientHeight;
    ui.log.scrollTop = Math.min(Math.max(top - 8, 0), bottom);
  }

  function scrollDown(force) {
    if (force || nearBottom()) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function addUser({ text, thumb, voice }) {
    const bubble = h("div", { class: "bijou-bubble" });
    const msg = h(
      "div",
      { class: "bijou-msg bijou-msg--user" },
      h("span", { class: "bijou-sr", text: `${t("you")}: ` }),
      bubble,
    );
    if (thumb) bubble.append(h("img", { class: "bijou-bubble__photo", src: thumb, alt: t("photoAlt") }));
    const textEl = h("span", { class: "bijou-bubble__text" });
    if (voice) bubble.append(h("span", { class: "bijou-bubble__voice" }, icon("mic")));
    bubble.append(textEl);
    textEl.textContent = text || "";
    textEl.hidden = !text;
    ui.log.append(msg);
    scrollDown(true);
    return {
      el: msg,
      setText(value, pending) {
        textEl.textContent = value;
        textEl.hidden = !value;
        msg.classList.toggle("bijou-msg--pending", Boolean(pending));
      },
    };
  }

  function addBot(pending) {
    const textEl = h("div", { class: "bijou-bubble__text" });
    const typing = h(
      "span",
      { class: "bijou-typing", role: "img", "aria-label": t("typing") },
      h("span"),
      h("span"),
      h("span"),
    );
    const bubble = h("div", { class: "bijou-bubble" }, textEl);
    if (pending) bubble.append(typing);
    const msg = h(
      "div",
      { class: "bijou-msg bijou-msg--bot" },
      h("span", { class: "bijou-sr", text: `${t("bot")}: ` }),
      bubble,
    );
    ui.log.append(msg);
    scrollDown(true);
    return {
      el: msg,
      stream(text) {
        typing.remove();
        textEl.textContent = text;
        msg.classList.add("bijou-msg--streaming");
        scrollDown(false);
      },
      finish(reply) {
        typing.remove();
        msg.classList.remove("bijou-msg--streaming");
        const text = replyText(reply);
        textEl.textContent = text;
        bubble.hidden = !text;
        msg.append(...renderCards(reply));
        if (!restoring) showStart(msg);
      },
      picture(img, caption, note, actions) {
        typing.remove();
        textEl.textContent = caption;
        bubble.prepend(img);
        bubble.append(h("p", { class: "bijou-tryon__note", text: note }), h("div", { class: "bijou-tryon__actions" }, actions));
        // The result's top in view (not the question above it): the picture is what they asked.
        const show = () => (ui.log.scrollTop = Math.max(msg.offsetTop - 8, 0));
        show();
        img.addEventListener("load", show, { once: true }); // now it has its height
      },
      fail(message) {
        typing.remove();
        msg.classList.remove("bijou-msg--streaming");
        msg.classList.add("bijou-msg--error");
        textEl.textContent = message;
        scrollDown(true);
      },
    };
  }

  // The reply's text lists its products too (for plain-text clients); beside the cards those
  // lines only repeat them, so a line naming a card's title and price is left out.
  function replyText(reply) {
    const text = (reply.text || "").trim();
    const bundle = reply.bundle ? [reply.bundle.anchor, ...(reply.bundle.items || [])] : [];
    const cards = [...(reply.products || []), ...(reply.cross_sell || []), ...bundle].filter(Boolean);
    if (!cards.length) return text;
    const lines = text.split("\n");
    const isCard = (line) =>
      line != null &&
      /^\s*(\d+[.)]|[-•*])\s/.test(line) &&
      cards.some((c) => line.includes(c.title) && line.includes(price(c.price)));
    // "Goes well with it:" before such lines; a longer lead ending in a colon stays.
    const isHeading = (line) => /[:：]\s*$/.test(line) && line.length <= 40 && !line.includes("₹");
    const kept = lines.filter(
      (line, i) => !isCard(line) && !(isHeading(line) && isCard(lines[i + 1])),
    );
    return kept.join("\n").trim() || text;
  }

  function addNote(text, kind = "info") {
    const msg = h("div", { class: `bijou-note bijou-note--${kind}`, text });
    ui.log.append(msg);
    scrollDown(true);
    return msg;
  }

  // --- cards --------------------------------------------------------------------------
  function imageUrl(id) {
    return `${API}/v1/products/${encodeURIComponent(id)}/image`;
  }

  function productImage(card, className) {
    const box = h("div", { class: className });
    const img = h("img", { src: imageUrl(card.id), alt: "", loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => {
      img.remove();
      box.classList.add("bijou-media--empty");
      box.append(h("span", { "aria-hidden": "true", text: (card.article || card.title || "◆").charAt(0) }));
    });
    box.append(img);
    return box;
  }

  function meta(card) {
    return [card.brand, card.colour].filter((v) => v && !String(card.title).includes(v)).join(" · ");
  }

  function addButton(cards, label, aria) {
    const btn = h("button", {
      type: "button",
      class: "bijou-btn bijou-add",
      "aria-label": aria,
      "data-product-id": cards.map((c) => c.id).join(" "),
      text: label,
    });
    btn.addEventListener("click", () => addToCart(cards, btn, label));
    return btn;
  }

  function productCard(card, kind, reply) {
    const body = h(
      "div",
      { class: "bijou-card__body" },
      h("h4", { class: "bijou-card__title", text: card.title }),
      meta(card) ? h("p", { class: "bijou-card__meta", text: meta(card) }) : null,
      h(
        "p",
        { class: "bijou-card__price" },
        price(card.price),
        card.list_price > card.price
          ? h("s", { class: "bijou-card__was", "aria-label": t("was", { amount: price(card.list_price) }), text: price(card.list_price) })
          : null,
      ),
    );
    if (kind === "product" && card.exact === false)
      body.prepend(h("span", { class: "bijou-tag", text: t("closeMatch") }));
    if (kind === "pair" && card.anchor_id) {
      const anchor = (reply.products || []).find((p) => p.id === card.anchor_id);
      if (anchor) body.append(h("p", { class: "bijou-card__anchor", text: t("pairsWith", { title: anchor.title }) }));
    }
    if (card.reason)
      body.append(
        h(
          "p",
          { class: "bijou-card__reason" },
          h("span", { class: "bijou-card__reason-label", text: `${t("whyFits")}: ` }),
          card.reason,
        ),
      );
    body.append(addButton([card], t("addToCart"), t("addLabel", { title: card.title })));
    body.append(tryOnButton(card));
    return h(
      "article",
      {
        class: `bijou-card bijou-card--${kind}`,
        "data-product-id": card.id,
        role: "listitem",
        "aria-label": `${card.title}, ${price(card.price)}`,
      },
      productImage(card, "bijou-card__media"),
      body,
    );
  }

  function cardRow(cards, kind, reply) {
    return h(
      "div",
      { class: `bijou-cards bijou-cards--${kind}`, role: "list" },
      cards.map((c) => productCard(c, kind, reply)),
    );
  }

  function bundleCard(bundle) {
    const line = (card, mine) =>
      h(
        "li",
        { class: "bijou-bundle__item", "data-product-id": card.id },
        productImage(card, "bijou-bundle__media"),
        h(
          "span",
          { class: "bijou-bundle__name" },
          mine ? h("span", { class: "bijou-tag", text: t("yourPick") }) : null,
          h("span", { text: card.title }),
        ),
        h("span", { class: "bijou-bundle__price", text: price(card.price) }),
      );
    const all = [bundle.anchor, ...(bundle.items || [])].filter(Boolean);
    const budget = bundle.budget ? ` (${t("budget", { amount: price(bundle.budget) })})` : "";
    return h(
      "section",
      { class: "bijou-bundle", "aria-label": t("bundle") },
      h("h4", { class: "bijou-section-title", text: t("bundle") }),
      h(
        "ul",
        { class: "bijou-bundle__list" },
        bundle.anchor ? line(bundle.anchor, true) : null,
        (bundle.items || []).map((c) => line(c, false)),
      ),
      h(
        "p",
        { class: "bijou-bundle__total" },
        h("span", { text: t("setTotal") + budget }),
        h("strong", { text: price(bundle.total) }),
      ),
      addButton(all, t("addSet"), t("addSet")),
    );
  }

  // --- try-on -------------------------------------------------------------------------
  // Shown on the cards of the articles the server places (earrings, necklaces, pendants,
  // sets); hidden until GET /v1/tryon says which.
  function tryOnButton(card) {
    const btn = h("button", {
      type: "button",
      class: "bijou-btn bijou-btn--ghost bijou-btn--small bijou-tryon",
      "aria-label": t("tryOnLabel", { title: card.title }),
      "data-article": card.article || "",
      text: t("tryOn"),
      onclick: () => tryOn(card),
    });
    btn.hidden = !state.tryon.articles.has(card.article);
    return btn;
  }

  async function loadTryOnArticles() {
    try {
      const res = await api("/v1/tryon");
      if (!res.ok) return;
      state.tryon.articles = new Set((await res.json()).articles || []);
    } catch {
      return; // offline: the banner says so; the buttons stay hidden
    }
    for (const btn of ui.log.querySelectorAll(".bijou-tryon"))
      btn.hidden = !state.tryon.articles.has(btn.dataset.article);
  }

  function tryOn(card) {
    if (state.busy) {
      announce(t("busy"));
      return;
    }
    if (!state.tryon.selfie) {
      askForSelfie(card);
      return;
    }
    sendTryOn(card);
  }

  function askForSelfie(card) {
    state.tryon.pending = card;
    addNote(t("tryOnChoose", { privacy: t("tryOnPrivacy") }));
    ui.selfieFile.click();
  }

  async function chooseSelfie(file) {
    ui.selfieFile.value = "";
    const card = state.tryon.pending;
    state.tryon.pending = null;
    if (!file || !card) return;
    try {
      const bitmap = await decode(file);
      // Re-encoded in the browser: upright, at most PHOTO_MAX_SIDE, and free of EXIF (GPS).
      const blob = await new Promise((resolve) =>
        canvasOf(bitmap, PHOTO_MAX_SIDE).toBlob(resolve, "image/jpeg", 0.9),
      );
      if (!blob) throw new Error("not encoded");
      state.tryon.selfie = { blob, thumb: drawJpeg(bitmap, 240, 0.8) };
    } catch {
      addNote(t("photoBad"), "warn");
      return;
    }
    sendTryOn(card);
  }

  async function sendTryOn(card) {
    const selfie = state.tryon.selfie;
    // Not remembered in sessionStorage: a reload forgets the photo and the result.
    addUser({ text: t("tryOnAsk", { title: card.title }), thumb: selfie.thumb });
    setBusy(true);
    const bot = addBot(true);
    announce(t("tryOnWorking"));
    try {
      const form = new FormData();
      form.append("photo", selfie.blob, "photo.jpg");
      form.append("product_id", card.id);
      form.append("format", "jpeg");
      if (state.session) form.append("session_id", state.session);
      let res = await api("/v1/tryon", { method: "POST", body: form });
      if (!res.ok) {
        const err = await failure(res);
        if (!(lostSession(err) && state.session)) throw err;
        forgetSession(); // the server forgot the session: try on without it
        form.delete("session_id");
        res = await api("/v1/tryon", { method: "POST", body: form });
        if (!res.ok) throw await failure(res);
      }
      const url = URL.createObjectURL(await res.blob());
      bot.picture(
        h("img", { class: "bijou-tryon__photo", src: url, alt: t("tryOnAlt", { title: card.title }) }),
        t("tryOnCaption", { title: card.title }),
        t("tryOnPrivacy"),
        [
          addButton([card], t("addToCart"), t("addLabel", { title: card.title })),
          h("button", {
            type: "button",
            class: "bijou-btn bijou-btn--ghost bijou-btn--small",
            text: t("tryOnOther"),
            onclick: () => {
              if (state.busy) return announce(t("busy"));
              state.tryon.selfie = null;
              askForSelfie(card);
            },
          }),
        ],
      );
    } catch (err) {
      bot.fail(err instanceof ApiError ? err.message : t("interrupted"));
    } finally {
      setBusy(false);
      scrollDown(false); // the quick replies came back below and took some of the view
    }
  }

  function renderCards(reply) {
    const parts = [];
    if (reply.products && reply.products.length) parts.push(cardRow(reply.products, "product", reply));
    if (reply.cross_sell && reply.cross_sell.length)
      parts.push(
        h(
          "section",
          { class: "bijou-pairs", "aria-label": t("goesWith") },
          h("h4", { class: "bijou-section-title", text: t("goesWith") }),
          cardRow(reply.cross_sell, "pair", reply),
        ),
      );
    if (reply.bundle) parts.push(bundleCard(reply.bundle));
    return parts;
  }

  // --- chips --------------------------------------------------------------------------
  function renderChips() {
    const keys = state.lastHadProducts ? ["pair", "gifts", "silver", "cart"] : ["gifts", "silver", "cart"];
    ui.chips.replaceChildren(
      ...keys.map((key) =>
        h("button", {
          type: "button",
          class: "bijou-chip",
          "data-chip": key,
          text: t(`chips.${key}`),
          onclick: () => (key === "cart" ? showCart() : ask(t(`chips.${key}`))),
        }),
      ),
    );
    ui.chips.hidden = state.busy;
  }

  // --- chat ---------------------------------------------------------------------------
  function setBusy(busy) {
    state.busy = busy;
    ui.send.disabled = busy;
    ui.log.setAttribute("aria-busy", busy ? "true" : "false");
    ui.chips.hidden = busy;
    updateMic();
  }

  function onSubmit(e) {
    e.preventDefault();
    const text = ui.input.value.trim();
    if (!text && !state.photo) return;
    if (state.busy) {
      announce(t("busy"));
      return;
    }
    ui.input.value = "";
    autoGrow();
    const photo = state.photo;
    clearPhoto();
    sendChat(text, photo);
  }

  ui.input.addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter is a new line; never mid-composition (Chinese input methods).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      ui.form.requestSubmit ? ui.form.requestSubmit() : onSubmit(e);
    }
  });
  ui.input.addEventListener("input", autoGrow);

  function autoGrow() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
  }

  function ask(text) {
    if (!state.open) openPanel();
    if (state.view !== "chat") showChat();
    if (state.busy) {
      announce(t("busy"));
      return;
    }
    const photo = state.photo;
    clearPhoto();
    sendChat(String(text || "").trim(), photo);
  }

  async function sendChat(text, photo, retried = false) {
    if (!text && !photo) return;
    if (!retried) {
      addUser({ text, thumb: photo && photo.thumb });
      remember({ role: "user", text, thumb: photo && photo.thumb });
    }
    setBusy(true);
    const bot = addBot(true);
    let streamed = "";
    try {
      const res = await api("/v1/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({
          session_id: state.session,
          message: text,
          shopper_id: SHOPPER,
          image: photo ? photo.data : null,
        }),
      });
      if (!res.ok) {
        const err = await failure(res);
        if (lostSession(err) && state.session && !retried) {
          forgetSession(); // start a fresh session, once
          bot.el.remove();
          setBusy(false);
          return sendChat(text, photo, true);
        }
        throw err;
      }
      let reply = null;
      for await (const ev of events(res)) {
        let payload = {};
        try {
          payload = JSON.parse(ev.data);
        } catch {
          continue;
        }
        if (ev.event === "session") setSession(payload.session_id);
        else if (ev.event === "delta") bot.stream((streamed += payload.text || ""));
        else if (ev.event === "reply") reply = payload;
        else if (ev.event === "error")
          throw new ApiError(
            payload.detail ? t("apiError", { detail: politeDetail(String(payload.detail)) }) : t("interrupted"),
          );
      }
      if (!reply) throw new ApiError(t("interrupted"));
      setSession(reply.session_id);
      bot.finish(reply);
      remember({ role: "bot", reply: slimReply(reply) });
      state.lastHadProducts = Boolean(reply.products && reply.products.length);
      refreshCart();
    } catch (err) {
      const message = err instanceof ApiError ? err.message : t("interrupted");
      bot.fail(message);
      remember({ role: "error", text: message });
    } finally {
      setBusy(false);
      renderChips();
    }
  }

  function slimReply(reply) {
    const keep = ({ id, title, price: p, list_price, article, colour, brand, reason, exact, anchor_id }) => ({
      id,
      title,
      price: p,
      list_price,
      article,
      colour,
      brand,
      reason,
      exact,
      anchor_id,
    });
    return {
      text: reply.text,
      products: (reply.products || []).map(keep),
      cross_sell: (reply.cross_sell || []).map(keep),
      bundle: reply.bundle
        ? {
            anchor: reply.bundle.anchor && keep(reply.bundle.anchor),
            items: (reply.bundle.items || []).map(keep),
            total: reply.bundle.total,
            budget: reply.bundle.budget,
          }
        : null,
    };
  }

  // --- photo --------------------------------------------------------------------------
  async function attachPhoto(file) {
    ui.file.value = "";
    if (!file) return;
    try {
      const bitmap = await decode(file);
      const thumb = drawJpeg(bitmap, 240, 0.8);
      const big = Math.max(bitmap.width, bitmap.height) > PHOTO_MAX_SIDE;
      const keep = PHOTO_TYPES.includes(file.type) && file.size <= PHOTO_MAX_BYTES && !big;
      // JPEG/PNG sent as they are; anything else (WebP, HEIC, huge phone shots) as a JPEG.
      const dataUrl = keep ? await readDataUrl(file) : drawJpeg(bitmap, PHOTO_MAX_SIDE, 0.9);
      state.photo = { data: dataUrl, thumb, name: file.name };
      ui.attachImg.src = thumb;
      ui.attach.hidden = false;
      ui.input.focus();
    } catch {
      clearPhoto();
      addNote(t("photoBad"), "warn");
    }
  }

  function clearPhoto() {
    state.photo = null;
    ui.attach.hidden = true;
    ui.attachImg.removeAttribute("src");
  }

  function decode(file) {
    if (window.createImageBitmap) return createImageBitmap(file);
    return new Promise((resolve, reject) => {
      const img = new Image();
      const url = URL.createObjectURL(file);
      img.onload = () => {
        URL.revokeObjectURL(url);
        resolve(img);
      };
      img.onerror = () => {
        URL.revokeObjectURL(url);
        reject(new Error("not an image"));
      };
      img.src = url;
    });
  }

  function canvasOf(image, maxSide) {
    const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(image.width * scale));
    canvas.height = Math.max(1, Math.round(image.height * scale));
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  function drawJpeg(image, maxSide, quality) {
    return canvasOf(image, maxSide).toDataURL("image/jpeg", quality);
  }

  function readDataUrl(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // --- voice: press and hold ----------------------------------------------------------
  const voiceSupported = Boolean(
    navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder,
  );

  // reason: the button's tooltip; note: the message shown in the chat, now (a press was
  // refused) or at the first press (the browser reported the block up front).
  function blockMic(reason, note, now) {
    state.mic = { blocked: true, reason, note, noted: false };
    updateMic();
    if (now) showMicReason();
  }

  function updateMic() {
    const blocked = !voiceSupported || state.mic.blocked;
    const tip = !voiceSupported ? t("micUnsupported") : state.mic.blocked ? state.mic.reason : t("mic");
    // aria-disabled (not disabled) keeps the button focusable and its tooltip showing.
    ui.mic.setAttribute("aria-disabled", blocked || (state.busy && !state.rec) ? "true" : "false");
    ui.mic.classList.toggle("bijou-mic--blocked", blocked);
    ui.mic.title = tip;
    ui.micTip.textContent = blocked ? tip : t("micHint");
  }

  if (!voiceSupported) updateMic();
  else if (navigator.permissions && navigator.permissions.query) {
    navigator.permissions
      .query({ name: "microphone" })
      .then((status) => {
        const apply = () => {
          if (status.state === "denied") {
            if (!state.mic.blocked) blockMic(t("micDeniedTip"), t("micDenied"), false);
          } else if (state.mic.blocked && state.mic.reason === t("micDeniedTip")) {
            state.mic = { blocked: false, reason: "" };
            updateMic();
          }
        };
        apply();
        status.onchange = apply;
      })
      .catch(() => updateMic());
  } else updateMic();

  function micUnavailable() {
    return !voiceSupported || state.mic.blocked;
  }

  ui.mic.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault(); // no focus-steal or text selection on long press
    if (micUnavailable()) return showMicReason();
    try {
      ui.mic.setPointerCapture(e.pointerId);
    } catch {
      /* some pointers can't be captured */
    }
    ui.mic.focus();
    startRecording();
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"])
    ui.mic.addEventListener(type, () => state.rec && stopRecording(false));
  ui.mic.addEventListener("keydown", (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (e.repeat) return;
    if (micUnavailable()) return showMicReason();
    startRecording();
  });
  ui.mic.addEventListener("keyup", (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (state.rec) stopRecording(false);
  });
  ui.mic.addEventListener("blur", () => state.rec && stopRecording(false));
  ui.mic.addEventListener("click", (e) => e.preventDefault());
  ui.mic.addEventListener("contextmenu", (e) => e.preventDefault());

  function showMicReason() {
    if (!voiceSupported) state.mic = { ...state.mic, note: state.mic.note || t("micUnsupported") };
    if (state.mic.note && !state.mic.noted) {
      state.mic.noted = true;
      addNote(state.mic.note, "warn"); // in the live log: read out too
    } else announce(ui.mic.title);
  }

  function pickMime() {
    const types = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];
    return types.find((type) => MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported(type)) || "";
  }

  async function startRecording() {
    if (state.rec || state.busy) {
      if (state.busy) announce(t("busy"));
      return;
    }
    const rec = { released: false, recorder: null, stream: null, chunks: [], started: 0, timer: 0 };
    state.rec = rec;
    setRecordingUi(true);
    try {
      rec.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      state.rec = null;
      setRecordingUi(false);
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError")
        blockMic(t("micDeniedTip"), t("micDenied"), true);
      else if (name === "NotFoundError" || name === "OverconstrainedError")
        blockMic(t("micMissing"), t("micMissing"), true);
      else addNote(t("micMissing"), "warn");
      return;
    }
    if (rec.released || state.rec !== rec) {
      // Let go while the browser was still asking for the microphone.
      rec.stream.getTracks().forEach((track) => track.stop());
      if (state.rec === rec) state.rec = null;
      setRecordingUi(false);
      addNote(t("micHint"));
      return;
    }
    const mime = pickMime();
    rec.recorder = new MediaRecorder(rec.stream, mime ? { mimeType: mime } : undefined);
    rec.recorder.addEventListener("dataavailable", (e) => e.data && e.data.size && rec.chunks.push(e.data));
    rec.recorder.addEventListener("stop", () => finishRecording(rec));
    rec.recorder.start();
    rec.started = performance.now();
    ui.status.textContent = `${t("listening")} 0:00`; // now: speak
    announce(t("listening"));
    rec.timer = setInterval(() => {
      const s = (performance.now() - rec.started) / 1000;
      ui.status.textContent = `${t("listening")} 0:${String(Math.floor(s)).padStart(2, "0")}`;
      if (s >= MAX_VOICE_S) stopRecording(false);
    }, 250);
  }

  function stopRecording(cancel) {
    const rec = state.rec;
    if (!rec) return;
    rec.released = true;
    rec.cancelled = cancel;
    if (!rec.recorder) return; // still waiting for the microphone; startRecording cleans up
    clearInterval(rec.timer);
    rec.elapsed = performance.now() - rec.started;
    if (rec.recorder.state !== "inactive") rec.recorder.stop();
  }

  function finishRecording(rec) {
    rec.stream.getTracks().forEach((track) => track.stop());
    if (state.rec === rec) state.rec = null;
    setRecordingUi(false);
    if (rec.cancelled) return;
    if (rec.elapsed < MIN_VOICE_MS || !rec.chunks.length) {
      addNote(t("micHint"));
      return;
    }
    const type = rec.recorder.mimeType || rec.chunks[0].type || "audio/webm";
    sendVoice(new Blob(rec.chunks, { type }));
  }

  function setRecordingUi(on) {
    ui.mic.setAttribute("aria-pressed", on ? "true" : "false");
    ui.mic.classList.toggle("bijou-mic--recording", on);
    ui.status.hidden = !on;
    ui.status.textContent = on ? t("micStarting") : "";
  }

  async function sendVoice(blob, retried = false) {
    const ext = /mp4/.test(blob.type) ? "m4a" : /ogg/.test(blob.type) ? "ogg" : "webm";
    const user = addUser({ text: t("transcribing"), voice: true });
    user.el.classList.add("bijou-msg--pending");
    setBusy(true);
    const bot = addBot(true);
    try {
      const form = new FormData();
      form.append("audio", blob, `voice.${ext}`);
      if (state.session) form.append("session_id", state.session);
      form.append("language", LANG); // the UI language: Whisper guesses poorly on short clips
      if (SHOPPER) form.append("shopper_id", SHOPPER);
      const res = await api("/v1/voice", { method: "POST", body: form });
      if (!res.ok) {
        const err = await failure(res);
        if (lostSession(err) && state.session && !retried) {
          forgetSession();
          user.el.remove();
          bot.el.remove();
          setBusy(false);
          return sendVoice(blob, true);
        }
        user.setText(t("voiceMessage"));
        // 422: nothing recognisable was said.
        throw err.status === 422 ? new ApiError(t("voiceEmpty")) : err;
      }
      const body = await res.json();
      setSession(body.session_id);
      const heard = ((body.transcript && body.transcript.text) || "").trim();
      user.setText(heard || t("voiceMessage"));
      remember({ role: "user", text: heard || t("voiceMessage"), voice: true });
      if (!heard && !(body.reply && body.reply.text)) throw new ApiError(t("voiceEmpty"));
      bot.finish(body.reply);
      remember({ role: "bot", reply: slimReply(body.reply) });
      state.lastHadProducts = Boolean(body.reply.products && body.reply.products.length);
      refreshCart();
    } catch (err) {
      const message = err instanceof ApiError ? err.message : t("interrupted");
      if (user.el.classList.contains("bijou-msg--pending")) user.setText(t("voiceMessage"));
      bot.fail(message);
      remember({ role: "error", text: message });
    } finally {
      setBusy(false);
      renderChips();
    }
  }

  // --- cart ---------------------------------------------------------------------------
  function cartCount() {
    return state.cart.items.reduce((n, item) => n + (Number(item.quantity) || 1), 0);
  }

  function setCart(cart) {
    const items = (cart && cart.items) || [];
    const total =
      cart && typeof cart.total === "number"
        ? cart.total
        : items.reduce((sum, item) => sum + item.price * (item.quantity || 1), 0);
    state.cart = { items, total };
    const n = cartCount();
    ui.cartCount.textContent = String(n);
    ui.cartCount.hidden = n === 0;
    ui.cartBtn.setAttribute("aria-label", t("cartCount", { n }));
    const badge = ui.launcher.querySelector(".bijou-launcher__badge");
    badge.textContent = String(n);
    badge.hidden = n === 0;
    if (state.view === "cart") renderCart();
  }

  async function refreshCart() {
    if (!state.session) {
      setCart(null);
      return;
    }
    try {
      const res = await api(`/v1/sessions/${encodeURIComponent(state.session)}/cart`);
      if (res.ok) setCart(await res.json());
      else if (lostSession(await failure(res))) {
        forgetSession();
        setCart(null);
      }
    } catch {
      /* the banner says it */
    }
  }

  function renderCart() {
    const items = state.cart.items;
    ui.cartEmpty.hidden = items.length > 0;
    ui.cartTotal.textContent = price(state.cart.total);
    ui.cartList.replaceChildren(
      ...items.map((item) =>
        h(
          "li",
          { class: "bijou-cart__item", "data-product-id": item.id },
          productImage(item, "bijou-cart__media"),
          h(
            "div",
            { class: "bijou-cart__info" },
            h("span", { class: "bijou-cart__name", text: item.title }),
            h(
              "span",
              { class: "bijou-cart__line" },
              h("span", { class: "bijou-cart__qty", text: t("qty", { n: item.quantity || 1 }) }),
              " · ",
              h("span", { text: price(item.price * (item.quantity || 1)) }),
            ),
          ),
          h("button", {
            type: "button",
            class: "bijou-btn bijou-btn--ghost bijou-btn--small bijou-remove",
            "aria-label": t("removeLabel", { title: item.title }),
            text: t("remove"),
            onclick: (e) => removeFromCart(item, e.currentTarget),
          }),
        ),
      ),
    );
  }

  async function addToCart(cards, btn, label) {
    btn.disabled = true;
    btn.textContent = t("adding");
    try {
      await ensureSession();
      let cart = null;
      for (const card of cards) {
        let res = await postCart(card.id);
        if (!res.ok) {
          const err = await failure(res);
          if (!lostSession(err)) throw err;
          forgetSession();
          await ensureSession();
          res = await postCart(card.id);
          if (!res.ok) throw await failure(res);
        }
        cart = await res.json();
      }
      setCart(cart);
      btn.textContent = t("added");
      btn.classList.add("bijou-add--done");
      announce(t("addedSay", { title: cards.map((c) => c.title).join(", ") }));
      setTimeout(() => {
        btn.textContent = label;
        btn.classList.remove("bijou-add--done");
        btn.disabled = false;
      }, 1800);
    } catch (err) {
      btn.textContent = label;
      btn.disabled = false;
      addNote(err instanceof ApiError ? err.message : t("interrupted"), "warn");
    }
  }

  function postCart(id) {
    return api(`/v1/sessions/${encodeURIComponent(state.session)}/cart`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ product_id: id, quantity: 1 }),
    });
  }

  async function removeFromCart(item, btn) {
    if (!state.session) return;
    btn.disabled = true;
    try {
      const res = await api(
        `/v1/sessions/${encodeURIComponent(state.session)}/cart/${encodeURIComponent(item.id)}`,
        { method: "DELETE" },
      );
      if (!res.ok) throw await failure(res);
      setCart(await res.json());
      announce(t("removedSay", { title: item.title }));
      ui.cartHeading.focus();
    } catch (err) {
      btn.disabled = false;
      announce(err instanceof ApiError ? err.message : t("interrupted"));
    }
  }

  // --- start --------------------------------------------------------------------------
  function newConversation() {
    if (state.busy) {
      announce(t("busy"));
      return;
    }
    forgetSession();
    state.log = [];
    store.set("log", null);
    state.lastHadProducts = false;
    setCart(null);
    clearPhoto();
    ui.log.replaceChildren();
    addBot(false).finish({ text: t("welcome") });
    renderChips();
    if (state.view !== "chat") showChat();
    ui.input.focus();
  }

  function restore() {
    restoring = true;
    addBot(false).finish({ text: t("welcome") });
    for (const entry of state.log) {
      if (entry.role === "user") addUser(entry);
      else if (entry.role === "bot") {
        addBot(false).finish(entry.reply);
        state.lastHadProducts = Boolean(entry.reply.products && entry.reply.products.length);
      } else if (entry.role === "error") addBot(false).fail(entry.text);
    }
    restoring = false;
    renderChips();
    updateMic();
  }

  function mount() {
    document.body.append(host);
    restore();
    loadTryOnArticles();
    setCart(null);
    if (state.session) refreshCart();
    if (OPEN_AT_LOAD) openPanel();
  }

  window.Bijou = {
    version: "0.1.0",
    lang: LANG,
    api: API,
    open: () => openPanel(),
    close: () => closePanel(),
    ask: (text) => ask(text),
  };

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
