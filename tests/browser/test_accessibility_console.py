"""A quick accessibility check of every console page: names of controls, keyboard reach
and visible focus, text contrast (WCAG AA), landmarks. And two safety checks: report text
is shown as text, and every page runs under a strict Content-Security-Policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import console, status_of, submit, wait_for
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

# Hostile report text: shown literally, never run or parsed as markup.
HOSTILE_TITLE = 'SQL injection <img src=x onerror="window.__pwned=1"> bypasses the login check'
HOSTILE_TEXT = "<script>window.__pwned=1</script> ' OR 1=1 -- lets anyone log in as admin."

NON_EMPTY = re.compile(r"\S")
# No inline script or style, nothing from elsewhere: what the console needs and no more.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)

# Every visible control: its id, tag, and the text of its <label>s.
CONTROLS = """() => [...document.querySelectorAll("input, select, textarea")]
  .filter(e => e.type !== "hidden" && e.getClientRects().length)
  .map(e => ({
    id: e.id, tag: e.tagName, labels: [...(e.labels || [])].map(l => l.textContent.trim()),
  }))"""

# Elements a keyboard user must reach: visible, enabled, focusable by Tab.
REACHABLE = """() => [...document.querySelectorAll(
    "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]),"
    + " textarea:not([disabled]), [tabindex='0']")]
  .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== "hidden")
  .map(e => e.id || e.getAttribute("href") || e.textContent.trim())"""

# The focused element: a key naming it, and whether a focus indicator shows.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  const ring = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2)
    || (s.boxShadow && s.boxShadow !== "none");
  return {key: e.id || e.getAttribute("href") || e.textContent.trim(), ring};
}"""

# Text whose colour is below WCAG AA against the background it is drawn on (the first
# opaque background up the tree): 4.5:1, or 3:1 for large text; disabled controls exempt.
LOW_CONTRAST = """() => {
  const rgba = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = e => {
    for (let n = e; n; n = n.parentElement) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c;
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const e of document.querySelectorAll("body *")) {
    const text = [...e.childNodes].filter(n => n.nodeType === 3)
      .map(n => n.textContent.trim()).join("");
    if (!text || e.closest("[disabled], .visually-hidden, option, script, style")) continue;
    const r = e.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;
    const s = getComputedStyle(e);
    const [l1, l2] = [lum(rgba(s.color)), lum(background(e))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(`${e.tagName} "${text.slice(0, 40)}" ${ratio.toFixed(2)}:1`);
  }
  return bad;
}"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, list[str]]]:
    """A service holding security reports, one report filed and one held (hostile text), and
    the address of every page."""
    env = {"AI_PIPELINE_REVIEW_HOLD": "security"}
    with ServiceProcess(tmp_path_factory.mktemp("console-a11y"), env) as svc:
        with svc.client() as client:
            filed = submit(client, title="Scrollbar flickers when resizing the window")
            wait_until_terminal(client, [filed], timeout=180)
            held = submit(client, title=HOSTILE_TITLE, description=HOSTILE_TEXT)
            wait_for(lambda: status_of(client, held)["current_step"] == "review", "held report")
        yield (
            svc,
            [
                "",
                "requests.html?status=all",
                f"request.html?id={filed}",
                "dashboard.html",
                "review.html",
            ],
        )


@pytest.mark.parametrize("index", range(5), ids=["submit", "requests", "request", "dash", "review"])
def test_every_page_names_its_controls_works_by_keyboard_and_has_contrast(
    pages: tuple[ServiceProcess, list[str]], page: Any, index: int
) -> None:
    svc, addresses = pages
    page.goto(console(svc, addresses[index]))
    expect(page.locator("main h1")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()
    expect(page.get_by_role("main")).to_have_count(1)
    if index == 4:
        expect(page.get_by_role("article")).to_have_count(1)
    else:
        page.wait_for_load_state("networkidle")

    # Every control has a label, and get_by_label finds that very control by it.
    controls = page.evaluate(CONTROLS)
    assert controls
    for control in controls:
        assert control["labels"], f"{control} has no <label>"
        found = page.get_by_label(control["labels"][0], exact=True)
        expect(found.and_(page.locator(f"#{control['id']}"))).to_have_count(1)
    for canvas in page.locator("canvas").all():
        expect(canvas).to_have_attribute("aria-label", NON_EMPTY)

    # The keyboard: the skip link comes first and leads to the content; Tab then reaches
    # every interactive element, each with a visible focus ring.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0, "the skip link shows when focused"
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # back into the header, to walk it too
    wanted = set(page.evaluate(REACHABLE))
    reached: set[str] = set()
    for _ in range(3 * len(wanted) + 20):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        assert focused["ring"], f"no visible focus on {focused['key']!r}"
        reached.add(focused["key"])
        if wanted <= reached:
            break
    assert wanted <= reached, f"not reachable by Tab: {wanted - reached}"

    assert page.evaluate(LOW_CONTRAST) == []


def test_report_text_is_shown_as_text_never_run(
    pages: tuple[ServiceProcess, list[str]], page: Any
) -> None:
    svc, _ = pages
    page.goto(console(svc, "review.html"))
    held = page.get_by_role("article", name=HOSTILE_TITLE)
    expect(held).to_be_visible()
    expect(held.get_by_role("region", name="Description")).to_have_text(HOSTILE_TEXT)
    expect(held.locator("img, script")).to_have_count(0)
    page.goto(console(svc))
    page.get_by_label("Title (required)", exact=True).fill("SQL injection bypasses the login")
    page.get_by_role("button", name="Submit report").focus()
    assert page.evaluate("() => window.__pwned") is None


def test_every_page_runs_under_a_strict_content_security_policy(
    pages: tuple[ServiceProcess, list[str]], browser: Any
) -> None:
    svc, addresses = pages
    context = browser.new_context()  # the policy enforced, unlike the other tests' pages
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )

    for address in addresses:
        served = page.goto(console(svc, address))
        assert served.headers["content-security-policy"] == STRICT_CSP  # the service's own
        expect(page.locator("main h1")).to_be_visible()
    expect(page.get_by_role("article")).to_have_count(1)  # the review page's script ran
    page.goto(console(svc, "dashboard.html"))
    expect(page.locator("#table-agents tbody tr")).not_to_have_count(0)  # charts drawn
    context.close()
    assert violations == []
