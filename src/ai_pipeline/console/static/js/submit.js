// The submit page: a bug report form, checked here and by the service, with reports of a
// similar title shown while the title is typed.
import {
  ApiError,
  announce,
  api,
  el,
  fieldErrors,
  fill,
  formatPercent,
  initPage,
  link,
  newId,
  renderError,
  requestHref,
} from "./common.js";

const MAX_TITLE = 300;
const MAX_TEXT = 65536;
const MAX_STEPS = 100;
const MAX_STEP = 4096;

const form = document.getElementById("report-form");
const submitButton = document.getElementById("submit-button");
const submitStatus = document.getElementById("submit-status");
const submitError = document.getElementById("submit-error");
const summary = document.getElementById("error-summary");
const summaryList = document.getElementById("error-summary-list");

// Form control id → the report field the service names in its errors.
const FIELDS = {
  title: "title",
  description: "description",
  reporter: "reporter",
  steps: "steps_to_reproduce",
  expected: "expected_behavior",
  actual: "actual_behavior",
  "env-os": "environment",
};
const CONTROL_OF = Object.fromEntries(Object.entries(FIELDS).map(([id, field]) => [field, id]));
const ERROR_SLOT = { "env-os": "environment-error" };
const LABELS = {
  title: "Title",
  description: "Description",
  reporter: "Email address",
  steps: "Steps to reproduce",
  expected: "Expected behaviour",
  actual: "Actual behaviour",
  "env-os": "Environment",
};

// One id per report: a retry after a failure (503, network) is recognised as the same report.
let reportId = newId();

initPage();

// ---------------------------------------------------------------- reading and checking

function value(id) {
  return document.getElementById(id).value.trim();
}

function steps() {
  return document
    .getElementById("steps")
    .value.split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
}

function looksLikeEmail(address) {
  // The service's rule: something@domain.tld, no spaces.
  const at = address.lastIndexOf("@");
  return at > 0 && address.slice(at + 1).includes(".") && !/\s/.test(address);
}

/** Client-side check: [{id, message}] for every problem (the service checks again). */
function check() {
  const problems = [];
  const title = value("title");
  if (!title) problems.push({ id: "title", message: "Enter a title" });
  else if (title.length > MAX_TITLE)
    problems.push({ id: "title", message: `The title must be at most ${MAX_TITLE} characters` });
  const description = value("description");
  if (!description) problems.push({ id: "description", message: "Enter a description" });
  else if (description.length > MAX_TEXT)
    problems.push({ id: "description", message: `The description is too long (at most ${MAX_TEXT} characters)` });
  const reporter = value("reporter");
  if (!reporter) problems.push({ id: "reporter", message: "Enter your email address" });
  else if (!looksLikeEmail(reporter))
    problems.push({ id: "reporter", message: "Enter an email address like name@example.com" });
  const lines = steps();
  if (lines.length > MAX_STEPS || lines.some((s) => s.length > MAX_STEP))
    problems.push({ id: "steps", message: `At most ${MAX_STEPS} steps of ${MAX_STEP} characters each` });
  for (const id of ["expected", "actual"]) {
    if (value(id).length > MAX_TEXT) problems.push({ id, message: "Too long" });
  }
  return problems;
}

function report() {
  const body = {
    id: reportId,
    title: value("title"),
    description: value("description"),
    reporter: value("reporter"),
  };
  const environment = {};
  for (const [id, key] of [
    ["env-os", "os"],
    ["env-version", "version"],
    ["env-browser", "browser"],
  ]) {
    if (value(id)) environment[key] = value(id);
  }
  if (Object.keys(environment).length) body.environment = environment;
  const lines = steps();
  if (lines.length) body.steps_to_reproduce = lines;
  if (value("expected")) body.expected_behavior = value("expected");
  if (value("actual")) body.actual_behavior = value("actual");
  return body;
}

// ---------------------------------------------------------------- showing problems

function clearProblems() {
  for (const id of Object.keys(FIELDS)) setFieldError(id, "");
  summary.hidden = true;
  summaryList.replaceChildren();
  renderError(submitError, null);
}

function setFieldError(id, message) {
  const control = document.getElementById(id);
  const slot = document.getElementById(ERROR_SLOT[id] || `${id}-error`);
  if (slot) slot.textContent = message ? `Error: ${message}` : "";
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}

/** Each problem beside its field, and all of them in a summary that takes the focus. */
function showProblems(problems) {
  const items = [];
  const seen = new Set();
  for (const { id, message } of problems) {
    if (id && !seen.has(id)) {
      seen.add(id);
      setFieldError(id, message);
    }
    const target = id ? el("a", { href: `#${id}` }, `${LABELS[id] ?? id}: ${message}`) : message;
    items.push(el("li", {}, target));
  }
  fill(summaryList, items);
  summary.hidden = false;
  summary.focus();
}

summaryList.addEventListener("click", (event) => {
  if (event.target instanceof HTMLAnchorElement) {
    event.preventDefault();
    document.getElementById(event.target.hash.slice(1))?.focus();
  }
});

// A field marked invalid is checked again when it is left, so the mark goes once fixed.
form.addEventListener("focusout", (event) => {
  const id = event.target.id;
  if (!(id in FIELDS) || event.target.getAttribute("aria-invalid") !== "true") return;
  const problem = check().find((p) => p.id === id);
  setFieldError(id, problem ? problem.message : "");
});

// ---------------------------------------------------------------- submitting

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearProblems();
  const problems = check();
  if (problems.length) {
    showProblems(problems);
    return;
  }
  submitButton.disabled = true;
  submitStatus.textContent = "Sending the report…";
  try {
    const accepted = await api("bug-reports", { method: "POST", body: report() });
    submitStatus.textContent = "Report accepted; opening its page…";
    announce("Report accepted.");
    reportId = newId();
    // The reply token rides in the fragment: the request page keeps it for this tab, and
    // it never reaches a server log or a Referer.
    const token = accepted.reply_token ? `#token=${encodeURIComponent(accepted.reply_token)}` : "";
    location.assign(requestHref(accepted.request_id) + token);
  } catch (error) {
    submitStatus.textContent = "";
    submitButton.disabled = false;
    if (error instanceof ApiError && error.status === 422) {
      const fromService = fieldErrors(error.details).map(({ field, message }) => ({
        id: CONTROL_OF[String(field ?? "").split(".")[0]] ?? null,
        message: field && !CONTROL_OF[String(field).split(".")[0]] ? `${field}: ${message}` : message,
      }));
      showProblems(fromService.length ? fromService : [{ id: null, message: error.message }]);
    } else {
      renderError(submitError, error, "The report was not sent");
    }
  }
});

// ---------------------------------------------------------------- similar reports

const titleInput = document.getElementById("title");
const duplicates = document.getElementById("duplicates");
const duplicatesList = document.getElementById("duplicates-list");
const duplicatesStatus = document.getElementById("duplicates-status");
let pending = null;
let timer = null;
let lastCount = 0;

function showCandidates(candidates) {
  const items = candidates.map((c) => {
    const parts = [el("a", { href: requestHref(c.request_id) }, c.title || c.bug_report_id || c.request_id)];
    if (c.issue_number !== null && c.issue_number !== undefined) {
      parts.push(" — ", link(c.issue_url, `issue #${c.issue_number}`));
    }
    if (typeof c.similarity === "number") parts.push(` (similarity ${formatPercent(c.similarity, 0)})`);
    return el("li", {}, parts);
  });
  fill(duplicatesList, items);
  duplicates.hidden = items.length === 0;
  if (items.length !== lastCount) {
    duplicatesStatus.textContent = items.length
      ? `${items.length} similar ${items.length === 1 ? "report" : "reports"} found below the title.`
      : "";
    lastCount = items.length;
  }
}

async function lookUp() {
  const title = titleInput.value.trim();
  pending?.abort();
  if (title.length < 3) {
    showCandidates([]);
    return;
  }
  pending = new AbortController();
  const query = new URLSearchParams({ title, limit: "5" });
  const description = value("description");
  if (description) query.set("description", description.slice(0, 2000));
  try {
    const answer = await api(`duplicate-candidates?${query}`, { signal: pending.signal });
    showCandidates(Array.isArray(answer?.candidates) ? answer.candidates : []);
  } catch (error) {
    if (error.name !== "AbortError") showCandidates([]); // a hint only: never in the way
  }
}

titleInput.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(lookUp, 350);
});
