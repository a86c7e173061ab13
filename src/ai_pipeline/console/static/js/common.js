// Shared by every console page: the API key, fetch with the key, the error envelope, DOM
// building that only ever inserts text (report text is hostile data: never innerHTML).

export const KEY_STORAGE = "aip-api-key";
export const API = "/api/v1";

// ---------------------------------------------------------------- DOM, text only

/** el("a", {href: "x", class: "y"}, "text", child, ...): strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) {
      // Handlers only as functions: an inline handler attribute is never written.
      if (typeof value === "function") node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `node` (strings as text). */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** An http(s) URL to link to, or null: a tracker's URL is data, never `javascript:`. */
export function safeHref(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

export function link(url, text) {
  const href = safeHref(url);
  return href ? el("a", { href }, text) : document.createTextNode(text);
}

export function badge(status) {
  const value = String(status ?? "unknown");
  return el("span", { class: `badge ${value.replace(/[^a-z_-]/gi, "")}` }, value.replace(/_/g, " "));
}

// A request's steps in order, with the names the pages show (review: only when held).
export const STEPS = [
  ["submitted", "Submitted"],
  ["triage", "Triage"],
  ["review", "Held for review"],
  ["ticket_creation", "Issue drafted"],
  ["github", "Filed on the tracker"],
];

export function stepLabel(step) {
  return STEPS.find(([name]) => name === step)?.[1] ?? String(step ?? "—").replace(/_/g, " ");
}

export function requestHref(requestId) {
  return `request.html?id=${encodeURIComponent(requestId)}`;
}

// ---------------------------------------------------------------- formatting

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${(seconds / 60).toFixed(1)} min`;
}

export function formatPercent(fraction, digits = 1) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return "—";
  return `${(fraction * 100).toFixed(digits)} %`;
}

export function formatNumber(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

// ---------------------------------------------------------------- the API key

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

function storeKey(secret) {
  if (secret) sessionStorage.setItem(KEY_STORAGE, secret);
  else sessionStorage.removeItem(KEY_STORAGE);
}

// ---------------------------------------------------------------- fetch and errors

/** A failure of an API call, from the error envelope when the service sent one. */
export class ApiError extends Error {
  constructor(status, code, message, details = null, requestId = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }

  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

/** fetch() a path of the service with the key; a Response when ok (or its status is in
 * `alsoOk`: the health document comes with 503 when unhealthy), else throws ApiError. */
export async function apiFetch(path, { method = "GET", body, signal, accept, alsoOk = [], headers: extra = {} } = {}) {
  const headers = { Accept: accept || "application/json", ...extra };
  const key = getKey();
  if (key) headers["X-API-Key"] = key;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NETWORK_ERROR", "the service could not be reached");
  }
  if (response.ok || alsoOk.includes(response.status)) return response;
  const failure = await envelopeOf(response);
  if (failure.isAuth) showAuthProblem(failure);
  throw failure;
}

/** The JSON body of a call to the API (`path` under /api/v1 unless absolute). */
export async function api(path, options = {}) {
  const url = path.startsWith("/") ? path : `${API}/${path}`;
  const response = await apiFetch(url, options);
  return response.status === 204 ? null : response.json();
}

async function envelopeOf(response) {
  let error = null;
  try {
    error = (await response.json())?.error ?? null;
  } catch {
    // not JSON: a proxy's page, say
  }
  if (error && typeof error === "object") {
    return new ApiError(
      response.status,
      String(error.code ?? "ERROR"),
      String(error.message ?? response.statusText),
      error.details ?? null,
      error.request_id ?? response.headers.get("x-request-id"),
    );
  }
  return new ApiError(response.status, "HTTP_" + response.status, response.statusText || "request failed");
}

/** The details of a 422, as [{field, message}] whatever their exact shape. */
export function fieldErrors(details) {
  const list = Array.isArray(details) ? details : Array.isArray(details?.errors) ? details.errors : [];
  return list
    .filter((d) => d && typeof d === "object")
    .map((d) => ({
      field: d.field ?? (Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : null),
      message: String(d.message ?? d.msg ?? "invalid"),
    }));
}

/** Show an API failure (the envelope's code, message, details, request id) in `box`. */
export function renderError(box, error, heading = "The request failed") {
  if (!error) {
    box.replaceChildren();
    return;
  }
  const parts = [el("h2", {}, heading), el("p", {}, messageOf(error))];
  if (error instanceof ApiError) {
    const errors = fieldErrors(error.details);
    if (errors.length) {
      parts.push(el("ul", {}, errors.map((e) => el("li", {}, e.field ? `${e.field}: ${e.message}` : e.message))));
    }
    const meta = [`code ${error.code}`];
    if (error.status) meta.push(`HTTP ${error.status}`);
    if (error.requestId) meta.push(`request id ${error.requestId}`);
    parts.push(el("p", { class: "meta" }, meta.join(" · ")));
  }
  fill(box, ...parts);
}

export function messageOf(error) {
  const text = error instanceof ApiError || error?.message ? String(error.message) : String(error);
  return sentence(text);
}

/** The service's messages start in lower case, fit for logs; a page shows sentences. */
function sentence(text) {
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

// ---------------------------------------------------------------- page frame

let announcer = null;

/** Say `message` to screen readers (a polite live region shared by the page). */
export function announce(message) {
  if (!announcer) {
    announcer = el("div", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    document.body.append(announcer);
  }
  announcer.textContent = "";
  // A new text node after a tick, so the same message twice is announced twice.
  setTimeout(() => {
    announcer.textContent = message;
  }, 50);
}

function showAuthProblem(error) {
  const banner = document.getElementById("auth-banner");
  if (!banner) return;
  const scope = error.status === 403 ? "a key with the right scope" : "an API key";
  fill(
    banner,
    el("strong", {}, error.status === 403 ? "Not allowed. " : "API key needed. "),
    `${sentence(error.message)} `,
    el("a", { href: "#api-key" }, `Enter ${scope}`),
    " in the page header; it is kept only for this browser tab.",
  );
  banner.hidden = false;
}

function clearAuthProblem() {
  const banner = document.getElementById("auth-banner");
  if (banner) {
    banner.hidden = true;
    banner.replaceChildren();
  }
}

/**
 * Wire the page header: the key form (saved in sessionStorage, sent as X-API-Key) and the
 * auth banner. `reload` runs after the key changes, so the page fetches again with it.
 */
export function initPage({ reload } = {}) {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  const state = document.getElementById("key-state");
  const forget = document.getElementById("key-forget");
  const describe = () => {
    if (state) state.textContent = getKey() ? "Key set for this tab." : "No key set.";
    if (forget) forget.hidden = !getKey();
  };
  describe();
  form?.addEventListener("submit", (event) => {
    event.preventDefault();
    storeKey(input.value.trim());
    input.value = "";
    describe();
    clearAuthProblem();
    announce(getKey() ? "API key saved for this tab." : "API key cleared.");
    reload?.();
  });
  forget?.addEventListener("click", () => {
    storeKey("");
    describe();
    announce("API key forgotten.");
    input.focus();
  });
  document.getElementById("auth-banner")?.addEventListener("click", (event) => {
    if (event.target instanceof HTMLAnchorElement && event.target.hash === "#api-key") {
      event.preventDefault();
      input.focus();
    }
  });
}

/** Run `task` now and every `ms` while the page is visible and not paused. */
export function every(ms, task) {
  let timer = null;
  let paused = false;
  const tick = async () => {
    timer = null;
    if (!paused && document.visibilityState === "visible") {
      try {
        await task();
      } catch (error) {
        console.error(error);
      }
    }
    if (!paused) timer = setTimeout(tick, ms);
  };
  tick();
  return {
    pause() {
      paused = true;
      if (timer) clearTimeout(timer);
      timer = null;
    },
    resume() {
      if (!paused) return;
      paused = false;
      tick();
    },
    get paused() {
      return paused;
    },
  };
}

/** A v4 UUID; crypto.randomUUID exists only in secure contexts (https or localhost). */
export function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
