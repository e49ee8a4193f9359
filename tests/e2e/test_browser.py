"""Real browser (Debian's Chromium via Playwright) on the running dashboard.

The dashboard runs as ``streamlit run`` in its own process, exactly as
``microstream dashboard`` starts it, attached to an engine API; Chromium loads
every page, checks that the panels render with data and without exception
text, that live panels refresh in place (no page reload), and that an engine
going away gives the "offline since" message. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

from microstream.browser import CHROMIUM, CHROMIUM_ARGS
from microstream.commands.dashboard import start_dashboard_process

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
BAD_TEXT = ("Traceback", "Exception:", "Error:", "StreamlitAPIException")
STARTUP_S = 120
TIMEOUT_MS = 180_000  # generous: the test machine may be heavily shared


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"process serving {url} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout} s")


def wait_rows(api_url: str, timeout: float) -> None:
    """Wait until the engine has features for a symbol (the sim warms up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            symbols = requests.get(f"{api_url}/api/v1/symbols", timeout=2).json()["symbols"]
            for entry in symbols:
                path = f"{api_url}/api/v1/{entry['exchange']}/{entry['symbol']}/features"
                if len(requests.get(path, params={"limit": 5}, timeout=2).json()["rows"]) >= 5:
                    return
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(1)
    pytest.fail(f"engine at {api_url} produced no features within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def engine_command(port: int, data_dir: Path) -> list[str]:
    """``microstream run --source sim --no-dashboard`` writing its lake under ``data_dir``."""
    return [
        sys.executable,
        "-m",
        "microstream.cli",
        "run",
        "--source",
        "sim",
        "--no-dashboard",
        "--data-dir",
        str(data_dir),
    ]


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An engine on the simulator, its API on a free port."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("lake")
    env = {**os.environ, "MICROSTREAM_API_PORT": str(port), "MICROSTREAM_API_HOST": "127.0.0.1"}
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "engine.log").open("wb") as log:
        process = subprocess.Popen(
            engine_command(port, data_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/health", STARTUP_S, process)
            wait_rows(url, STARTUP_S)
            yield url, process
        finally:
            stop(process)


@pytest.fixture(scope="module")
def dashboard(engine: tuple[str, subprocess.Popen[bytes]]) -> Iterator[str]:
    """The dashboard process attached to the engine."""
    port = free_port()
    process = start_dashboard_process(port, engine[0], quiet=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/_stcore/health", STARTUP_S, process)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser: Browser, dashboard: str) -> Iterator[Page]:
    """One browser tab kept across the tests: pages are switched in the app's navigation,
    as a person would, so Plotly's bundle loads once."""
    tab = browser.new_page(viewport={"width": 1440, "height": 1000})
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(dashboard + "/", wait_until="domcontentloaded")
    try:
        yield tab
    finally:
        tab.close()


def go_to(page: Page, title: str) -> None:
    """Open a page from the sidebar navigation."""
    page.locator("[data-testid='stSidebarNavLink']").filter(has_text=title).first.click()


def body_text(page: Page) -> str:
    return page.inner_text("body")


def assert_no_error_text(page: Page) -> None:
    text = body_text(page)
    for bad in BAD_TEXT:
        assert bad not in text, f"{bad!r} on {page.url}:\n{text[:2000]}"
    assert page.locator("[data-testid='stException']").count() == 0


def wait_charts(page: Page, n: int) -> None:
    """Wait until ``n`` Plotly charts have drawn their SVG."""
    page.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=n
    )


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), timeout=TIMEOUT_MS)
    return path


def test_live_page_renders_and_refreshes_in_place(page: Page) -> None:
    page.get_by_text("SIMULATED DATA").first.wait_for()
    wait_charts(page, 6)
    assert_no_error_text(page)
    text = body_text(page)
    for panel in ("Live market", "Price ladder", "Forecast", "Live scorecard"):
        assert panel in text
    for label in ("Mid", "Spread (bps)", "Imbalance L1", "Regime"):
        assert page.get_by_text(label, exact=True).count() >= 1
    page.evaluate("window.__not_reloaded = true")
    first_value = page.locator("[data-testid='stMetricValue']").first.inner_text()
    screenshot(page, "dashboard-live")
    changed = False
    for _ in range(60):  # the fragment refreshes every 1.5 s
        time.sleep(1)
        if page.locator("[data-testid='stMetricValue']").first.inner_text() != first_value:
            changed = True
            break
    assert page.evaluate("window.__not_reloaded === true"), "the page reloaded"
    assert changed, "the live panels did not refresh"
    assert_no_error_text(page)


@pytest.mark.parametrize(
    ("nav", "title", "charts"),
    [
        ("Heatmap", "Liquidity heatmap", 1),
        ("Health", "Engine health", 1),
        ("Learn", "Learn market microstructure", 0),
    ],
)
def test_other_pages_render(page: Page, nav: str, title: str, charts: int) -> None:
    go_to(page, nav)
    page.get_by_role("heading", name=title).first.wait_for()
    page.get_by_text("SIMULATED DATA").first.wait_for()
    if charts:
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n "
            "&& !document.body.innerText.includes('Live market')",
            arg=charts,
        )
    else:
        page.get_by_text("Texts from").first.wait_for()
    assert_no_error_text(page)
    screenshot(page, f"dashboard-{nav.lower()}")


def test_engine_stopping_shows_offline_not_traceback(
    page: Page, engine: tuple[str, subprocess.Popen[bytes]]
) -> None:
    go_to(page, "Health")
    page.get_by_role("heading", name="Engine health").first.wait_for()
    stop(engine[1])
    page.get_by_text("Engine offline since").first.wait_for()
    page.get_by_role("button", name="Start simulator").wait_for()
    assert_no_error_text(page)
    screenshot(page, "dashboard-offline")
