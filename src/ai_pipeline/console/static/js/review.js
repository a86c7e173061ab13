// The review queue: reports held after triage (needs-triage, security, the security review
// band), each with a form to correct type, priority, severity, labels, duplicate and security
// flag, and release it.
// Refreshed every 5 seconds without disturbing a form being edited.
import {
  ApiError,
  announce,
  api,
  badge,
  el,
  every,
  fill,
  formatPercent,
  formatTime,
  initPage,
  renderError,
  requestHref,
} from "./common.js";

const POLL_MS = 5000;
const TYPES = ["bug", "feature", "question"];
const PRIORITIES = ["low", "medium", "high", "critical"];
const SEVERITIES = ["minor", "moderate", "major", "blocker"];

const list = document.getElementById("reviews");
const errorBox = document.getElementById("review-error");
const queueStatus = document.getElementById("queue-status");
const shown = new Map(); // request_id → its <article>
let serial = 0;
let lastCount = null;

// ``empty``: the field may be left empty ("none": nothing supports a value).
function select(id, label, options, current, empty = false) {
  const known = options.includes(current) ? options : current ? [current, ...options] : options;
  const choices = known.map((o) => el("option", { value: o, selected: o === current }, o));
  if (empty) choices.unshift(el("option", { value: "", selected: current == null }, "none"));
  return el("div", { class: "field" }, el("label", { for: id }, label), el("select", { id, name: id.split("--")[0] }, choices));
}

function said(triage, field, value) {
  const suggested = Array.isArray(triage.suggested) && triage.suggested.includes(field);
  const reason = triage.reasons?.[field];
  return `${value ?? "none"}${suggested ? " (suggestion)" : ""}${confidence(triage, field)}${reason ? ` — ${reason}` : ""}`;
}

function confidence(triage, field) {
  const value = triage?.confidence?.[field];
  return typeof value === "number" ? ` (confidence ${formatPercent(value, 0)})` : "";
}

function article(review) {
  const n = ++serial;
  const triage = review.triage ?? {};
  const titleId = `review-${n}-title`;
  const labels = Array.isArray(triage.labels) ? triage.labels : [];
  const reasons = Array.isArray(review.reasons) ? review.reasons : [];
  const status = el("p", { class: "release-status", role: "status", "aria-live": "polite" });
  const errors = el("div", { class: "error-box", role: "alert" });
  const duplicate = triage.duplicate_of?.issue_number ?? "";
  const band = triage.security_band ?? (triage.security_sensitive ? "private" : "public");

  const form = el(
    "form",
    { class: "release-form", novalidate: true },
    el(
      "fieldset",
      {},
      el("legend", {}, "Correct the triage"),
      el(
        "div",
        { class: "inline-fields" },
        select(`type--${n}`, "Type", TYPES, triage.type),
        select(`priority--${n}`, "Priority", PRIORITIES, triage.priority, true),
        select(`severity--${n}`, "Severity", SEVERITIES, triage.severity, true),
      ),
      el(
        "div",
        { class: "field" },
        el("label", { for: `labels--${n}` }, "Labels"),
        el("span", { class: "hint", id: `labels--${n}-hint` }, "Separated by commas."),
        el("span", { class: "field-error", id: `labels--${n}-error` }),
        el("input", {
          id: `labels--${n}`,
          name: "labels",
          type: "text",
          value: labels.join(", "),
          "aria-describedby": `labels--${n}-hint labels--${n}-error`,
          autocomplete: "off",
        }),
      ),
      el(
        "div",
        { class: "field" },
        el("label", { for: `duplicate--${n}` }, "Duplicate of issue number"),
        el("span", { class: "hint", id: `duplicate--${n}-hint` }, "Leave empty if it is not a duplicate."),
        el("span", { class: "field-error", id: `duplicate--${n}-error` }),
        el("input", {
          id: `duplicate--${n}`,
          name: "duplicate_of_issue",
          type: "text",
          inputmode: "numeric",
          value: String(duplicate),
          "aria-describedby": `duplicate--${n}-hint duplicate--${n}-error`,
          autocomplete: "off",
        }),
      ),
      el(
        "div",
        { class: "field check" },
        el("input", {
          id: `security--${n}`,
          name: "security_sensitive",
          type: "checkbox",
          checked: Boolean(triage.security_sensitive),
        }),
        el(
          "label",
          { for: `security--${n}` },
          band === "review"
            ? "Security-sensitive (triage was unsure: keep it checked to file privately, clear it to file publicly)"
            : "Security-sensitive (filed privately where the tracker can)",
        ),
      ),
    ),
    el("button", { type: "submit" }, "Release"),
    status,
  );

  const description = el(
    "div",
    { class: "report-text", tabindex: "0", role: "region", "aria-label": "Description" },
    String(review.description ?? ""),
  );
  const node = el(
    "article",
    { class: "review", "aria-labelledby": titleId, "data-request-id": review.request_id },
    el("h2", { id: titleId }, String(review.title ?? review.bug_report_id ?? "Untitled report")),
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Request"),
      el("dd", {}, el("a", { href: requestHref(review.request_id), class: "mono" }, review.request_id)),
      el("dt", {}, "Held since"),
      el("dd", {}, formatTime(review.held_at)),
      el("dt", {}, "Held because"),
      el("dd", { class: "reasons" }, reasons.length ? reasons.map((r) => [el("span", { class: "badge held" }, String(r)), " "]) : "—"),
      el("dt", {}, "Triage said"),
      el(
        "dd",
        {},
        el(
          "ul",
          { class: "triage-said" },
          [
            ["Type", "type", triage.type],
            ["Priority", "priority", triage.priority],
            ["Severity", "severity", triage.severity],
            ["Category", "category", triage.category],
            ["Security", "security", band === "review" ? "security review" : band],
          ].map(([label, field, value]) => el("li", { "data-field": field }, `${label}: ${said(triage, field, value)}`)),
        ),
      ),
    ),
    el("h3", {}, "Description"),
    description,
    errors,
    form,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    release(review, node, form, n, status, errors);
  });
  return node;
}

/** Only what the maintainer changed: a field left out keeps triage's value (and its
 * confidence), so the training example records real corrections only. */
function corrections(form, n, triage) {
  const value = (name) => form.querySelector(`#${name}--${n}`).value.trim();
  const body = {};
  for (const name of ["type", "priority", "severity"]) {
    // An emptied priority or severity is sent as null: "nothing supports a value".
    if (value(name) !== (triage[name] ?? "")) body[name] = value(name) || null;
  }
  const labels = value("labels")
    .split(",")
    .map((l) => l.trim())
    .filter(Boolean);
  const bad = labels.find((l) => l.length > 50 || /[\u0000-\u001f\u007f]/.test(l));
  if (bad !== undefined) return { problem: { field: "labels", message: "Each label: at most 50 characters" } };
  if (labels.length > 30) return { problem: { field: "labels", message: "At most 30 labels" } };
  const before = Array.isArray(triage.labels) ? triage.labels : [];
  if (labels.join("\n") !== before.join("\n")) body.labels = labels;
  const security = form.querySelector(`#security--${n}`).checked;
  if (security !== Boolean(triage.security_sensitive)) body.security_sensitive = security;
  const duplicateText = value("duplicate");
  if (duplicateText && !/^[1-9][0-9]{0,9}$/.test(duplicateText)) {
    return { problem: { field: "duplicate", message: "Enter an issue number (digits only), or leave it empty" } };
  }
  const duplicate = duplicateText ? Number(duplicateText) : null;
  if (duplicate !== (triage.duplicate_of?.issue_number ?? null)) body.duplicate_of_issue = duplicate;
  return { body };
}

async function release(review, node, form, n, status, errors) {
  for (const field of ["labels", "duplicate"]) {
    form.querySelector(`#${field}--${n}-error`).textContent = "";
    form.querySelector(`#${field}--${n}`).removeAttribute("aria-invalid");
  }
  renderError(errors, null);
  const { body, problem } = corrections(form, n, review.triage ?? {});
  if (problem) {
    const input = form.querySelector(`#${problem.field}--${n}`);
    form.querySelector(`#${problem.field}--${n}-error`).textContent = `Error: ${problem.message}`;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  status.textContent = "Releasing…";
  try {
    await api(`reviews/${encodeURIComponent(review.request_id)}`, { method: "POST", body });
    node.classList.add("released");
    node.dataset.released = "true";
    for (const control of form.elements) control.disabled = true;
    fill(status, badge("released"), " Released: it is being filed now. ", el("a", { href: requestHref(review.request_id) }, "Follow the request"));
    announce(`Released “${review.title ?? review.request_id}”.`);
  } catch (error) {
    button.disabled = false;
    status.textContent = "";
    renderError(errors, error, error instanceof ApiError && error.status === 400 ? "Not released: it no longer waits for review" : "Not released");
  }
}

async function load() {
  try {
    const doc = await api("reviews?limit=100&offset=0");
    renderError(errorBox, null);
    const hold = Array.isArray(doc.hold) ? doc.hold : [];
    document.getElementById("hold-policy").textContent = hold.length
      ? `holding: ${hold.join(", ")}`
      : "holding is off: AI_PIPELINE_REVIEW_HOLD is empty";
    const reviews = Array.isArray(doc.reviews) ? doc.reviews : [];
    const wanted = new Set(reviews.map((r) => r.request_id));
    for (const [id, node] of shown) {
      // A released one stays, with its message, until the page is refreshed by hand.
      if (!wanted.has(id) && node.dataset.released !== "true" && !node.contains(document.activeElement)) {
        node.remove();
        shown.delete(id);
      }
    }
    for (const review of reviews) {
      if (shown.has(review.request_id)) continue;
      const node = article(review);
      shown.set(review.request_id, node);
      list.append(node);
    }
    const total = doc.pagination?.total ?? reviews.length;
    if (total !== lastCount) {
      queueStatus.textContent = total ? `${total} ${total === 1 ? "report waits" : "reports wait"} for review.` : "Nothing waits for review.";
      lastCount = total;
    }
    document.getElementById("updated-at").textContent = new Date().toLocaleTimeString();
  } catch (error) {
    renderError(errorBox, error, "The review queue could not be loaded");
  }
}

document.getElementById("refresh").addEventListener("click", () => {
  for (const [id, node] of shown) {
    if (node.dataset.released === "true") {
      node.remove();
      shown.delete(id);
    }
  }
  load();
});
initPage({ reload: load });
every(POLL_MS, load);
