"""The dashboard draws its charts from the service's figures and keeps them live."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import console, submit
from tests.service import ServiceProcess, wait_until_terminal

pytestmark = pytest.mark.e2e

# Whether a canvas has any pixel drawn (Chart.js leaves an empty chart's area transparent
# but for axes; a chart with bars or lines has many more opaque pixels than that).
OPAQUE_PIXELS = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let opaque = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) opaque++;
  return opaque;
}"""
CHART_TOTAL = """id => {
  const chart = window.Chart.getChart(document.getElementById(id));
  return chart ? chart.data.datasets.flatMap(d => d.data).reduce((a, b) => a + (b || 0), 0) : -1;
}"""
NONZERO = re.compile(r"\b[1-9]\d*\b")


def test_the_dashboard_charts_the_processed_reports_and_updates_live(
    service: ServiceProcess, page: Any, shot: Callable[[Any, str], Path]
) -> None:
    with service.client() as client:
        ids = [submit(client, title=f"Search results are empty for query {n}") for n in range(4)]
        wait_until_terminal(client, ids, timeout=180)

    page.goto(console(service, "dashboard.html"))
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()

    # The text alternatives carry the same numbers as the charts: non-zero once reports ran.
    for table in ("table-daily", "table-histogram", "table-agents"):
        expect(page.locator(f"#{table} tbody")).to_contain_text(NONZERO)
    expect(page.locator("#chart-daily")).to_have_attribute(
        "aria-label", re.compile(r"[1-9]\d* submitted")
    )
    expect(page.locator("#kpi-success")).to_have_text(re.compile(r"\d+\.\d %"))
    expect(page.locator("#kpi-median")).not_to_have_text("—")
    expect(page.locator("#kpi-today")).to_have_text(NONZERO)
    expect(page.locator("#health-overall")).to_have_text(re.compile("healthy|degraded"))
    expect(page.locator("#health-body")).to_contain_text("triage agent")

    for chart in ("chart-daily", "chart-histogram", "chart-agents"):
        page.wait_for_function(f"({CHART_TOTAL})('{chart}') > 0")
        assert page.locator(f"#{chart}").evaluate(OPAQUE_PIXELS) > 500, chart

    # Live: the next polls add throughput points, including reports sent after the page opened.
    with service.client() as client:
        more = [submit(client, title=f"Search results are empty for phrase {n}") for n in range(2)]
        wait_until_terminal(client, more, timeout=180)
    expect(page.locator("#table-rates tbody tr")).not_to_have_count(0)
    expect(page.locator("#table-rates tbody")).to_contain_text(re.compile(r"\d+:\d+"))
    page.wait_for_function(f"({CHART_TOTAL})('chart-rates') > 0")
    expect(page.locator("#kpi-lag")).to_have_text(re.compile(r"^\d"))
    shot(page, "dashboard")


def test_pausing_the_dashboard_stops_its_updates_and_period_changes_refetch(
    service: ServiceProcess, page: Any
) -> None:
    page.goto(console(service, "dashboard.html"))
    expect(page.locator("#updated-at")).not_to_have_text("never")
    pause = page.get_by_role("button", name="Pause live updates")
    pause.focus()
    page.keyboard.press("Space")
    expect(pause).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#updated-at")).to_contain_text("(paused)")
    page.keyboard.press("Space")
    expect(pause).to_have_attribute("aria-pressed", "false")
    with page.expect_response(re.compile(r"/api/v1/metrics\?period=7d")):
        page.get_by_label("Period", exact=True).select_option("7d")
