"""The dashboard in real headless Chromium (Debian's, installed by scripts/install.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.ports import free_block
from tests.test_dashboard import store  # noqa: F401 - fixture

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def dashboard(store):  # noqa: F811 - the imported fixture
    port = free_block(1)
    proc = subprocess.Popen([sys.executable, "-m", "inferledger", "dashboard", "--data",
                             str(store.root), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("dashboard did not come up: " + proc.stderr.read())
    yield url
    proc.terminate()
    proc.wait(10)


def test_overview_renders_in_chromium(dashboard, tmp_path) -> None:
    assert Path(CHROMIUM).exists(), "run scripts/install.sh: it installs Debian's chromium"
    shots = Path(os.environ.get("INFERLEDGER_SCREENSHOTS", tmp_path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(dashboard)
        page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
        assert page.get_by_text("Simulated data.").count() == 1
        assert page.get_by_text("Cost per response").count() >= 1
        assert page.locator('[data-testid="stMetricValue"]').first.inner_text().startswith("$")
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_timeout(1000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)
        browser.close()
    assert (shots / "dashboard-overview.png").stat().st_size > 10_000
