// One request: its summary, a live timeline of its steps (server-sent events read with
// fetch(), as EventSource cannot send the key; polling the status document if the stream
// fails), the triage result with its confidences, how the issue ended, the reporter's
// answer form (with the reply token the submit page or a notification put in the
// fragment, #token=…) and, for maintainers, closing and reopening a local issue.
import {
  API,
  ApiError,
  announce,
  apiFetch,
  api,
  badge,
  el,
  fill,
  formatPercent,
  formatSeconds,
  formatTime,
  initPage,
  link,
  renderError,
  requestHref,
  safeHref,
  STEPS,
  stepLabel,
} from "./common.js";

const TERMINAL = new Set(["completed", "failed"]);
const POLL_MS = 2000;

const requestId = new URLSearchParams(location.search).get("id");
const TOKEN_STORAGE = `aip-reply-token:${requestId}`;
const QUESTION_TEXT = {
  steps_to_reproduce: "What exact steps reproduce the problem?",
  expected_behavior: "What did you expect to happen?",
  actual_behavior: "What happened instead (the exact error message)?",
  environment: "Which version, and on which operating system, browser or runtime?",
};
const RESOLUTION_TEXT = {
  open: "open",
  fixed: "fixed",
  not_planned: "closed as not planned",
  duplicate: "closed as a duplicate",
  reopened: "reopened",
};
const errorBox = document.getElementById("request-error");
const liveState = document.getElementById("live-state");
const announcer = document.getElementById("timeline-announcer");

let lastDoc = null;
let stream = null; // AbortController of the running stream or poll loop
let pollTimer = null;

// ---------------------------------------------------------------- rendering

function render(doc) {
  const before = lastDoc;
  lastDoc = doc;
  renderError(errorBox, null);
  document.title = `Request ${doc.request_id} · AI Pipeline console`;
  fill(document.getElementById("request-title"), "Request ", el("span", { class: "mono" }, doc.request_id));
  fill(document.getElementById("request-status"), badge(doc.status));
  fill(document.getElementById("current-step"), stepLabel(doc.current_step));
  fill(document.getElementById("bug-report-id"), doc.bug_report_id ?? "—");
  const issue = document.getElementById("issue-link");
  if (doc.github_issue_url || doc.github_issue_number != null) {
    const text = doc.github_issue_number != null ? `Issue #${doc.github_issue_number}` : "Issue";
    fill(issue, link(doc.github_issue_url, text));
  } else {
    fill(issue, doc.status === "failed" ? "not filed" : "not filed yet");
  }
  fill(document.getElementById("resolution"), resolutionText(doc.resolution));
  renderReplySection(doc);
  renderIssueActions(doc);
  fill(document.getElementById("created-at"), formatTime(doc.created_at));
  fill(document.getElementById("processing-time"), formatSeconds(doc.processing_time_seconds));
  const failure = document.getElementById("failure");
  failure.hidden = !doc.error_message;
  failure.textContent = doc.error_message ? `Failed: ${doc.error_message}` : "";
  renderTimeline(doc);
  renderTriage(doc.progress?.triage?.data, doc.progress?.review?.data);
  announceChanges(before, doc);
}

function renderTimeline(doc) {
  const progress = doc.progress ?? {};
  const items = [];
  for (const [step, label] of STEPS) {
    const p = progress[step];
    if (step === "review" && !p) continue; // only a held request passes through review
    const status = p?.status ?? (doc.status === "failed" ? "skipped" : "pending");
    const active = status === "started";
    items.push(
      el(
        "li",
        { class: `${status}${active ? " active" : ""}`, "data-step": step, "data-status": status },
        el("span", { class: "step-name" }, label),
        " ",
        badge(status === "started" && step === "review" ? "waiting" : status),
        p?.timestamp ? el("span", { class: "when" }, ` ${formatTime(p.timestamp)}`) : null,
        p?.duration_seconds != null ? el("span", { class: "when" }, ` (${formatSeconds(p.duration_seconds)})`) : null,
      ),
    );
  }
  fill(document.getElementById("timeline"), items);
}

function announceChanges(before, doc) {
  const changes = [];
  for (const [step, label] of STEPS) {
    const now = doc.progress?.[step]?.status;
    if (now && now !== before?.progress?.[step]?.status) changes.push(`${label}: ${now}`);
  }
  if (before && before.status !== doc.status) changes.push(`Request ${doc.status}`);
  if (changes.length && before) announcer.textContent = changes.join(". ") + ".";
}

function confidenceOf(value) {
  if (typeof value !== "number") return null;
  const meter = el("meter", { min: "0", max: "1", value: String(value), "aria-hidden": "true" });
  return el("span", { class: "confidence" }, meter, `confidence ${formatPercent(value, 0)}`);
}

function fact(term, ...value) {
  return [el("dt", {}, term), el("dd", {}, ...value)];
}

function renderTriage(triage, review) {
  const box = document.getElementById("triage");
  if (!triage || typeof triage !== "object") {
    fill(box, el("p", {}, "Not triaged yet."));
    return;
  }
  const confidence = triage.confidence ?? {};
  const reasons = triage.reasons && typeof triage.reasons === "object" ? triage.reasons : {};
  const suggested = new Set(Array.isArray(triage.suggested) ? triage.suggested : []);
  // A value below its field's threshold is shown as a suggestion; an empty priority or
  // severity means nothing in the report supported one. The reason says what it rests on.
  const valued = (name, value) => [
    value == null ? "none" : String(value),
    value != null && suggested.has(name) ? el("span", { class: "suggestion" }, " (suggestion)") : null,
    " ",
    confidenceOf(confidence[name]),
    reasons[name] ? el("span", { class: "reason", "data-field": name }, ` — ${reasons[name]}`) : null,
  ];
  const labels = Array.isArray(triage.labels) ? triage.labels : [];
  const missing = Array.isArray(triage.missing_information) ? triage.missing_information : [];
  const candidates = Array.isArray(triage.duplicate_candidates) ? triage.duplicate_candidates : [];
  const facts = [
    ...fact("Type", ...valued("type", triage.type)),
    ...fact("Priority", ...valued("priority", triage.priority)),
    ...fact("Severity", ...valued("severity", triage.severity)),
    ...fact("Category", ...valued("category", triage.category)),
    ...fact("Security", ...valued("security", bandText(triage))),
    ...fact(
      "Labels",
      labels.length ? el("ul", { class: "labels" }, labels.map((l) => el("li", {}, l))) : "none",
    ),
    ...fact(
      "Duplicate of",
      duplicateText(triage.duplicate_of),
      " ",
      confidenceOf(confidence.duplicate),
      reasons.duplicate ? el("span", { class: "reason", "data-field": "duplicate" }, ` — ${reasons.duplicate}`) : null,
    ),
    ...fact(
      "Missing information",
      missing.length ? el("ul", {}, missing.map((m) => el("li", {}, m))) : "none",
    ),
    ...fact("Assignee suggestion", assigneeText(triage.assignee_suggestion)),
    ...fact("Engine", triage.engine ?? "—"),
  ];
  const parts = [el("dl", { class: "facts", id: "triage-facts" }, facts)];
  if (candidates.length) {
    parts.push(
      el("h3", {}, "Similar reports"),
      el("ol", {}, candidates.map((c) => el("li", {}, candidateText(c)))),
    );
  }
  const confidences = Object.entries(confidence).filter(([, v]) => typeof v === "number");
  if (confidences.length) {
    parts.push(
      el(
        "table",
        { id: "confidence-table" },
        el("caption", {}, "Triage confidence per field"),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Field"), el("th", { scope: "col", class: "num" }, "Confidence"))),
        el(
          "tbody",
          {},
          confidences.map(([name, v]) =>
            el("tr", {}, el("th", { scope: "row" }, name), el("td", { class: "num" }, formatPercent(v, 1))),
          ),
        ),
      ),
    );
  }
  if (review && typeof review === "object" && Object.keys(review).length) {
    parts.push(el("h3", {}, "Review"), el("p", {}, reviewText(review)));
  }
  fill(box, parts);
}

function assigneeText(suggestion) {
  if (!suggestion) return "none";
  if (typeof suggestion !== "object") return String(suggestion);
  const who = [suggestion.assignee, suggestion.team && `team ${suggestion.team}`].filter(Boolean).join(", ");
  return suggestion.reason ? `${who || "nobody"} (${suggestion.reason})` : who || "none";
}

function bandText(triage) {
  const band = triage.security_band ?? (triage.security_sensitive ? "private" : "public");
  return band === "review" ? "security review" : band;
}

function duplicateText(dup) {
  if (dup === null || dup === undefined) return "none";
  if (typeof dup !== "object") return String(dup);
  const number = dup.issue_number ?? dup.number;
  if (number != null) return link(dup.issue_url ?? dup.url, `issue #${number}`);
  return dup.request_id ? el("a", { href: requestHref(dup.request_id) }, dup.title || dup.request_id) : String(dup.title || dup.bug_report_id || "another report");
}

function candidateText(c) {
  if (!c || typeof c !== "object") return String(c);
  const parts = [];
  if (c.request_id) parts.push(el("a", { href: requestHref(c.request_id) }, c.title ?? c.request_id));
  else parts.push(String(c.title ?? c.bug_report_id ?? "report"));
  const number = c.issue_number ?? c.number;
  if (number != null) parts.push(" — ", link(c.issue_url ?? c.url, `issue #${number}`));
  if (typeof c.similarity === "number") parts.push(` (similarity ${formatPercent(c.similarity, 0)})`);
  return el("span", {}, parts);
}

function reviewText(review) {
  const pieces = [];
  for (const [key, value] of Object.entries(review)) {
    if (value === null || value === undefined) continue;
    pieces.push(`${key.replace(/_/g, " ")}: ${Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : value}`);
  }
  return pieces.join("; ");
}

// ---------------------------------------------------------------- after filing

function resolutionText(resolution) {
  if (!resolution || typeof resolution !== "object") return "—";
  const state = String(resolution.state ?? "");
  const parts = [badge(state), " ", RESOLUTION_TEXT[state] ?? state.replace(/_/g, " ")];
  if (resolution.duplicate_issue_number != null) parts.push(` of #${resolution.duplicate_issue_number}`);
  if (resolution.at) parts.push(el("span", { class: "when" }, ` ${formatTime(resolution.at)}`));
  return el("span", { id: "resolution-state", "data-state": state }, parts);
}

function openQuestions(doc) {
  const needs = doc.needs_info;
  if (!needs || !Array.isArray(needs.questions)) return [];
  const answered = new Set(Array.isArray(needs.answered) ? needs.answered : []);
  return needs.questions.filter((q) => !answered.has(q));
}

function renderReplySection(doc) {
  const section = document.getElementById("reply-section");
  section.hidden = doc.github_issue_number == null;
  const open = openQuestions(doc);
  document.getElementById("questions-intro").textContent = open.length
    ? "We need a little more to act on this report:"
    : doc.needs_info?.questions?.length
      ? "Every question is answered. You can still add to the report:"
      : "You can add to the report here:";
  fill(
    document.getElementById("questions"),
    open.map((q) => el("li", { "data-field": q }, QUESTION_TEXT[q] ?? String(q).replace(/_/g, " "))),
  );
}

function replyToken() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  try {
    if (fromLink) {
      sessionStorage.setItem(TOKEN_STORAGE, fromLink);
      history.replaceState(null, "", location.pathname + location.search); // off the address bar
    }
    return sessionStorage.getItem(TOKEN_STORAGE) || fromLink;
  } catch {
    return fromLink;
  }
}

const token = requestId ? replyToken() : null;

document.getElementById("reply-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = document.getElementById("reply-text");
  const status = document.getElementById("reply-status");
  const errorBox = document.getElementById("reply-error");
  renderError(errorBox, null);
  if (!text.value.trim()) {
    renderError(errorBox, new Error("Write an answer first"), "Nothing to send");
    text.focus();
    return;
  }
  const button = document.getElementById("reply-button");
  button.disabled = true;
  status.textContent = "Sending…";
  try {
    const accepted = await api(`requests/${encodeURIComponent(requestId)}/replies`, {
      method: "POST",
      body: { text: text.value },
      headers: token ? { "X-Reply-Token": token } : {},
    });
    text.value = "";
    const left = accepted.questions_remaining ?? [];
    status.textContent = left.length
      ? `Answer sent; it will be posted on the issue. Still open: ${left.join(" ")}`
      : "Answer sent; it will be posted on the issue.";
    announce(status.textContent);
    setTimeout(refresh, 1000);
  } catch (error) {
    status.textContent = "";
    renderError(errorBox, error, "The answer was not sent");
  } finally {
    button.disabled = false;
  }
});

function isLocalIssue(doc) {
  const url = safeHref(doc.github_issue_url);
  return url !== null && new URL(url).pathname.startsWith(`${API}/issues/`);
}

function renderIssueActions(doc) {
  const section = document.getElementById("issue-actions");
  section.hidden = doc.github_issue_number == null || !isLocalIssue(doc);
  const resolved = ["fixed", "not_planned", "duplicate"].includes(doc.resolution?.state);
  document.getElementById("close-form").hidden = resolved;
  document.getElementById("reopen-button").hidden = !resolved;
}

async function issueAction(path, body) {
  const status = document.getElementById("issue-action-status");
  const errorBox = document.getElementById("issue-action-error");
  renderError(errorBox, null);
  status.textContent = "Working…";
  try {
    const result = await api(`issues/${lastDoc.github_issue_number}/${path}`, { method: "POST", body });
    status.textContent = `Issue #${result.number} is ${result.state}${result.state_reason ? ` (${result.state_reason.replace(/_/g, " ")})` : ""}.`;
    announce(status.textContent);
    setTimeout(refresh, 1000);
  } catch (error) {
    status.textContent = "";
    renderError(errorBox, error, "The issue was not changed");
  }
}

document.getElementById("close-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const reason = document.getElementById("close-reason").value;
  const duplicate = document.getElementById("duplicate-of").value;
  const body = { reason };
  if (reason === "duplicate" && duplicate) body.duplicate_of = Number(duplicate);
  issueAction("close", body);
});

document.getElementById("reopen-button").addEventListener("click", () => issueAction("reopen", {}));

/** The status document once more: a finished request's stream has ended, but its issue
 * goes on changing (answers, closing). */
async function refresh() {
  try {
    render(await api(`requests/${encodeURIComponent(requestId)}/status`));
  } catch (error) {
    renderError(errorBox, error, "The request could not be loaded");
  }
}

// ---------------------------------------------------------------- live updates

/** Read `text/event-stream` from a fetch body; calls onEvent(name, data) per event. */
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

async function follow() {
  stop();
  const controller = new AbortController();
  stream = controller;
  const path = `${API}/requests/${encodeURIComponent(requestId)}/events`;
  try {
    const response = await apiFetch(path, { signal: controller.signal, accept: "text/event-stream" });
    if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      throw new Error("not an event stream");
    }
    liveState.textContent = "live (streaming)";
    liveState.dataset.mode = "stream";
    await readEvents(response, (name, data) => {
      if (name === "state") render(JSON.parse(data));
    });
    if (lastDoc && TERMINAL.has(lastDoc.status)) {
      liveState.textContent = `finished (${lastDoc.status})`;
      return;
    }
    throw new Error("the stream ended early");
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error instanceof ApiError && (error.isAuth || error.status === 404 && error.code === "REQUEST_NOT_FOUND")) {
      liveState.textContent = "stopped";
      renderError(errorBox, error, "The request could not be loaded");
      return;
    }
    poll(controller);
  }
}

/** The fallback: the status document every two seconds until the request ends. */
async function poll(controller) {
  liveState.textContent = "live (polling every 2 s)";
  liveState.dataset.mode = "poll";
  const path = `requests/${encodeURIComponent(requestId)}/status`;
  const tick = async () => {
    if (controller.signal.aborted) return;
    try {
      const doc = await api(path, { signal: controller.signal });
      render(doc);
      if (TERMINAL.has(doc.status)) {
        liveState.textContent = `finished (${doc.status})`;
        return;
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      renderError(errorBox, error, "The request could not be loaded");
      if (error instanceof ApiError && (error.isAuth || error.status === 404)) {
        liveState.textContent = "stopped";
        return;
      }
    }
    pollTimer = setTimeout(tick, POLL_MS);
  };
  await tick();
}

function stop() {
  stream?.abort();
  stream = null;
  clearTimeout(pollTimer);
}

initPage({ reload: follow });
if (!requestId) {
  liveState.textContent = "no request";
  renderError(errorBox, new Error("No request id in the address: open a request from the list."), "No request chosen");
} else {
  follow();
}
