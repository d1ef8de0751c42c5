"""The dashboard in real headless Chromium (Debian's, installed by scripts/install.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from inferledger.procs import terminate, wait_for_health
from tests.ports import free_block

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def dashboard(demo_store):
    port = free_block(1)
    proc = subprocess.Popen([sys.executable, "-m", "commands", "dashboard", "--data",
                             str(demo_store.root), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/_stcore/health")
    except TimeoutError:
        proc.kill()
        pytest.fail("dashboard did not come up: " + proc.stderr.read())
    yield url
    terminate(proc)


PAGES = {"": "Overview", "cost": "Cost", "gpu_efficiency": "GPU efficiency",
         "latency": "Latency", "explorer": "Request explorer", "settings": "Pricing & settings"}


def _settled(page) -> None:
    """Wait until Streamlit has finished running the script for this view."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                           timeout=60_000)
    page.wait_for_timeout(500)


def _spend_everywhere(page, url: str, store, tmp: Path) -> dict[str, str]:
    import re

    from analytics.report.config import ReportConfig
    from analytics.report.week import Week
    from analytics.report.weekly import preview
    from analytics.summary import summary
    from dashboard.ui import money

    out = {"summary": money(summary(store)["gpu_spend_usd"])}
    page.goto(url)
    _settled(page)
    metric = page.locator('[data-testid="stMetric"]', has_text="GPU spend")
    out["overview"] = metric.locator('[data-testid="stMetricValue"]').inner_text()
    page.goto(f"{url}/cost")
    _settled(page)
    caption = page.get_by_text("Rows add up to").first.inner_text()
    out["cost page"] = re.search(r"Rows add up to (\$[\d,]+\.\d\d)", caption)[1]
    html = tmp / "spend.html"
    preview(store, Week.parse("2026-W48"), html, ReportConfig())
    page.goto(html.as_uri())
    out["report"] = re.search(r"GPU spend (\$[\d,]+\.\d\d) =", page.inner_text("body"))[1]
    return out


def test_every_page_renders_in_chromium(dashboard, demo_store, tmp_path) -> None:
    assert Path(CHROMIUM).exists(), "run scripts/install.sh: it installs Debian's chromium"
    shots = Path(os.environ.get("INFERLEDGER_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        for path, title in PAGES.items():
            page.goto(f"{dashboard}/{path}")
            page.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
            _settled(page)
            assert page.locator('[data-testid="stException"]').count() == 0, path
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0, path
            assert page.get_by_text("Simulated data.").count() == 1, path
            if path != "settings":  # every other page draws charts (vega, as SVG marks)
                marks = page.locator('[data-testid="stVegaLiteChart"] svg.marks '
                                     'g[class*="mark-"] path')
                marks.first.wait_for(timeout=30_000)
                assert marks.count() > 0, path
            page.screenshot(path=str(shots / f"dashboard-{path or 'overview'}.png"),
                            full_page=True)
        # One spend, read off the rendered pages: the Overview's figure, the Cost page's
        # tables (their caption's total) and the weekly report are the summary's.
        spend = _spend_everywhere(page, dashboard, demo_store, tmp_path)
        assert len(set(spend.values())) == 1, spend
        # A filter changes the numbers: one model of two has fewer responses.
        page.goto(dashboard)
        _settled(page)
        responses = page.locator('[data-testid="stMetric"]', has_text="Responses")
        before = responses.locator('[data-testid="stMetricValue"]').inner_text()
        page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first.click()
        page.get_by_role("option", name="qwen2.5-32b-instruct").click()
        page.keyboard.press("Escape")
        _settled(page)
        after = responses.locator('[data-testid="stMetricValue"]').inner_text()
        assert int(after.replace(",", "")) < int(before.replace(",", "")), (before, after)
        page.screenshot(path=str(shots / "dashboard-overview-filtered.png"), full_page=True)
        browser.close()
    for path in PAGES:
        assert (shots / f"dashboard-{path or 'overview'}.png").stat().st_size > 10_000


def test_weekly_report_html_renders_in_chromium(demo_store, tmp_path) -> None:
    from analytics.report.config import ReportConfig
    from analytics.report.week import Week
    from analytics.report.weekly import preview

    shots = Path(os.environ.get("INFERLEDGER_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    html = tmp_path / "report.html"
    figures = preview(demo_store, Week.parse("2026-W48"), html, ReportConfig())
    assert not figures.empty
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 1200})
        page.goto(html.as_uri())
        page.get_by_text("InferLedger weekly report").wait_for(timeout=30_000)
        widths = page.locator("img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 2 and all(w > 300 for w in widths)  # both charts decoded
        assert page.get_by_text("Simulated data").count() == 1
        page.screenshot(path=str(shots / "weekly-report.png"), full_page=True)
        browser.close()
    assert (shots / "weekly-report.png").stat().st_size > 10_000
