"""Dashboard memory soak: RSS of the Streamlit process over time with a live page open.

Runs, for ``--minutes``:

* an engine API fed in real time by synthetic rows (``--engine synthetic``,
  default: light, deterministic) or ``microstream run --source sim
  --no-dashboard`` (``--engine sim``: the real pipeline);
* the dashboard process exactly as ``microstream dashboard`` starts it;
* Debian's Chromium (Playwright) with one tab on a page (``--page``, default the
  Live page, which refreshes about ten charts every 1.5 s);

and samples the resident memory (RSS, MB) of the Streamlit process (and of the
engine process with ``--engine sim``) every ``--every`` seconds into a CSV.
It prints a JSON summary on its last line: first/last/max RSS and the slope of
a least-squares line through the samples of the second half (MB per hour).

    .venv/bin/python benchmarks/dashboard_soak.py --minutes 60 --out reports/dashboard_soak.csv

Everything listens on 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from microstream.browser import CHROMIUM, CHROMIUM_ARGS
from microstream.commands.dashboard import start_dashboard_process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout} s")


class SyntheticEngine:
    """An in-process engine API fed with synthetic rows in real time."""

    def __init__(self, port: int) -> None:
        from microstream.api import EngineApi
        from microstream.dashboard.synthetic import filled_store, run_feeds

        store, feeds = filled_store(("BTCUSDT",), seconds=600)
        self.stop_event = threading.Event()
        run_feeds(feeds, self.stop_event)
        self.api = EngineApi(store, port=port)
        self.api.start()
        self.process: psutil.Process | None = None

    def close(self) -> None:
        self.stop_event.set()
        self.api.stop()


class SimEngine:
    """``microstream run --source sim --no-dashboard`` as a child process."""

    def __init__(self, port: int) -> None:
        self.lake = tempfile.mkdtemp(prefix="soak-lake-")
        env = {**os.environ, "MICROSTREAM_API_PORT": str(port)}
        cmd = [sys.executable, "-m", "microstream.cli", "run", "--source", "sim"]
        cmd += ["--no-dashboard", "--data-dir", self.lake]
        self.popen = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.process: psutil.Process | None = psutil.Process(self.popen.pid)

    def close(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def rss_mb(process: psutil.Process | None) -> float | None:
    if process is None:
        return None
    try:
        return float(process.memory_info().rss) / 1e6
    except psutil.Error:
        return None


def page_probe(page: Any) -> dict[str, Any]:
    """What the tab shows: how many charts, the first headline value, any error text."""
    try:
        return dict(
            page.evaluate(
                """() => ({
                    charts: document.querySelectorAll('.js-plotly-plot').length,
                    first_value: (document.querySelector("[data-testid='stMetricValue']")
                                  || {innerText: null}).innerText,
                    error_text: /Traceback|Exception/.test(document.body.innerText),
                })"""
            )
        )
    except Exception as exc:  # a busy tab must not end the soak
        return {"charts": None, "first_value": None, "error_text": f"probe failed: {exc}"}


def slope_mb_per_hour(times: list[float], values: list[float]) -> float | None:
    half = len(times) // 2
    if len(times) - half < 3:
        return None
    t = np.asarray(times[half:]) / 3600.0
    v = np.asarray(values[half:])
    return float(np.polyfit(t, v, 1)[0])


def soak(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    api_port, ui_port = free_port(), free_port()
    engine: SyntheticEngine | SimEngine = (
        SimEngine(api_port) if args.engine == "sim" else SyntheticEngine(api_port)
    )
    api_url = f"http://127.0.0.1:{api_port}"
    ui_url = f"http://127.0.0.1:{ui_port}"
    dashboard = start_dashboard_process(ui_port, api_url, quiet=True)
    rows: list[dict[str, Any]] = []
    try:
        wait_http(api_url + "/health", 120)
        wait_http(ui_url + "/_stcore/health", 120)
        streamlit = psutil.Process(dashboard.pid)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{ui_url}/{args.page}", wait_until="domcontentloaded")
            start = time.monotonic()
            end = start + args.minutes * 60
            while True:
                now = time.monotonic()
                rows.append(
                    {
                        "elapsed_s": round(now - start, 1),
                        "streamlit_rss_mb": rss_mb(streamlit),
                        "engine_rss_mb": rss_mb(engine.process),
                        **page_probe(page),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                if now >= end or dashboard.poll() is not None:
                    break
                time.sleep(min(args.every, max(0.0, end - now)))
            browser.close()
    finally:
        dashboard.terminate()
        try:
            dashboard.wait(timeout=20)
        except subprocess.TimeoutExpired:
            dashboard.kill()
        engine.close()
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    st = [r["streamlit_rss_mb"] for r in rows if r["streamlit_rss_mb"] is not None]
    times = [r["elapsed_s"] for r in rows if r["streamlit_rss_mb"] is not None]
    return {
        "minutes": args.minutes,
        "engine": args.engine,
        "page": args.page or "live",
        "samples": len(rows),
        "streamlit_rss_first_mb": round(st[0], 1) if st else None,
        "streamlit_rss_last_mb": round(st[-1], 1) if st else None,
        "streamlit_rss_max_mb": round(max(st), 1) if st else None,
        "streamlit_rss_slope_mb_per_h_second_half": slope_mb_per_hour(times, st),
        "distinct_first_values": len({r.get("first_value") for r in rows}),
        "samples_with_error_text": sum(1 for r in rows if r.get("error_text") is True),
        "dashboard_exit_code": dashboard.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--engine", choices=("synthetic", "sim"), default="synthetic")
    parser.add_argument("--page", default="", help="'' (Live), heatmap, health or learn")
    parser.add_argument("--out", default=None, help="CSV of the samples")
    args = parser.parse_args()
    print(json.dumps(soak(args)))


if __name__ == "__main__":
    main()
