// The requests page: the paginated list with a status filter; the filter and page live in the
// address (?status=&limit=&offset=), so a view can be bookmarked and Back works.
import {
  api,
  badge,
  el,
  fill,
  formatSeconds,
  formatTime,
  initPage,
  link,
  renderError,
  requestHref,
  stepLabel,
} from "./common.js";

const STATUSES = ["active", "completed", "failed", "all"];
const SIZES = ["10", "20", "50", "100"];

const filters = document.getElementById("filters");
const statusSelect = document.getElementById("status-filter");
const sizeSelect = document.getElementById("page-size");
const body = document.getElementById("requests-body");
const caption = document.getElementById("requests-caption");
const listStatus = document.getElementById("list-status");
const listError = document.getElementById("list-error");
const prev = document.getElementById("prev-page");
const next = document.getElementById("next-page");
const pageInfo = document.getElementById("page-info");

function view() {
  const params = new URLSearchParams(location.search);
  const status = STATUSES.includes(params.get("status")) ? params.get("status") : "active";
  const limit = SIZES.includes(params.get("limit")) ? Number(params.get("limit")) : 20;
  const offset = Math.max(0, Number.parseInt(params.get("offset") ?? "0", 10) || 0);
  return { status, limit, offset };
}

function go(target) {
  const params = new URLSearchParams({
    status: target.status,
    limit: String(target.limit),
    offset: String(target.offset),
  });
  history.pushState(null, "", `?${params}`);
  load();
}

function row(doc) {
  const issue =
    doc.github_issue_number !== null && doc.github_issue_number !== undefined
      ? link(doc.github_issue_url, `#${doc.github_issue_number}`)
      : "—";
  return el(
    "tr",
    {},
    el("td", { class: "mono" }, el("a", { href: requestHref(doc.request_id) }, doc.request_id)),
    el("td", { class: "mono" }, doc.bug_report_id),
    el("td", {}, badge(doc.status)),
    el("td", {}, stepLabel(doc.current_step)),
    el("td", {}, issue),
    el("td", {}, formatTime(doc.created_at)),
    el("td", { class: "num" }, formatSeconds(doc.processing_time_seconds)),
  );
}

async function load() {
  const { status, limit, offset } = view();
  statusSelect.value = status;
  sizeSelect.value = String(limit);
  listStatus.textContent = "Loading…";
  try {
    const page = await api(`requests?${new URLSearchParams({ status, limit, offset })}`);
    renderError(listError, null);
    const docs = page.requests ?? [];
    const total = page.pagination?.total ?? docs.length;
    fill(body, docs.length ? docs.map(row) : el("tr", {}, el("td", { colspan: "7" }, "No requests.")));
    const first = docs.length ? offset + 1 : 0;
    const range = `${first}–${offset + docs.length} of ${total}`;
    caption.textContent = `Requests (${status}), ${range}`;
    pageInfo.textContent = range;
    prev.disabled = offset === 0;
    next.disabled = !page.pagination?.has_more;
    listStatus.textContent = `Showing ${status} requests ${range}.`;
  } catch (error) {
    listStatus.textContent = "";
    prev.disabled = next.disabled = true;
    renderError(listError, error, "The requests could not be loaded");
  }
}

filters.addEventListener("submit", (event) => {
  event.preventDefault();
  go({ status: statusSelect.value, limit: Number(sizeSelect.value), offset: 0 });
});
// A new filter applies at once; keyboard users moving through the options with the arrows
// are not sent away on each: the change event of a select fires on commit.
statusSelect.addEventListener("change", () => filters.requestSubmit());
sizeSelect.addEventListener("change", () => filters.requestSubmit());
document.getElementById("refresh").addEventListener("click", load);
prev.addEventListener("click", () => {
  const v = view();
  go({ ...v, offset: Math.max(0, v.offset - v.limit) });
});
next.addEventListener("click", () => {
  const v = view();
  go({ ...v, offset: v.offset + v.limit });
});
window.addEventListener("popstate", load);

initPage({ reload: load });
load();
