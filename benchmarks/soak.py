"""Soak test: `microstream run --source sim` with the dashboard open in Chromium.

Samples the resident memory of the engine process, the Streamlit dashboard
process and the browser every ``--every`` seconds for ``--minutes`` minutes,
while the page refreshes its live panels (every 1.5 s). Each sample also
probes the tab (charts drawn, the first headline value, error text), so the
summary shows whether the page kept refreshing. Prints one JSON line per
sample and a summary JSON object as the last line (first/last/max RSS and the
least-squares growth per hour of each process, over the whole run and over its
second half; the same for the page's live JavaScript heap after a forced
garbage collection and its DOM node count, which tell a leaking page from a
browser that has not yet reclaimed memory; distinct headline values, samples
with error text).

    .venv/bin/python benchmarks/soak.py --minutes 60 --every 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import psutil

from microstream.browser import CHROMIUM, CHROMIUM_ARGS


def wait_health(url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                data: dict[str, Any] = json.loads(resp.read())
                if data.get("symbols"):
                    return data
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"engine API {url} did not become healthy in {timeout:.0f} s")


def rss_mb(proc: psutil.Process, children: bool) -> float:
    procs = [proc, *(proc.children(recursive=True) if children else [])]
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return round(total / 2**20, 1)


def slope_per_hour(times: list[float], values: list[float]) -> float:
    n = len(times)
    if n < 2:
        return 0.0
    mt, mv = sum(times) / n, sum(values) / n
    var = sum((t - mt) ** 2 for t in times)
    cov = sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True))
    return round(cov / var * 3600, 2) if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument("--api-port", type=int, default=18770)
    parser.add_argument("--dashboard-port", type=int, default=18501)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    data_dir = tempfile.mkdtemp(prefix="microstream-soak-")
    api = f"http://127.0.0.1:{args.api_port}"
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microstream.cli",
            "--log-level",
            "WARNING",
            "run",
            "--source",
            "sim",
            "--data-dir",
            data_dir,
            "--api-port",
            str(args.api_port),
            "--dashboard-port",
            str(args.dashboard_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MICROSTREAM_API_URL": api},
    )
    samples: list[dict[str, Any]] = []
    try:
        wait_health(api, 120)
        eng = psutil.Process(engine.pid)
        with sync_playwright() as pw:
            # gc() before each sample, and exact heap sizes: the page's live JS heap
            # (a leak) is told apart from memory the browser merely has not reclaimed
            args_ = [*CHROMIUM_ARGS, "--js-flags=--expose-gc", "--enable-precise-memory-info"]
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=args_)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://localhost:{args.dashboard_port}", timeout=120_000)
            start = time.monotonic()
            end = start + args.minutes * 60
            while True:
                dash = [
                    c for c in eng.children(recursive=True) if "streamlit" in " ".join(c.cmdline())
                ]
                sample = {
                    "t_s": round(time.monotonic() - start, 1),
                    "engine_mb": rss_mb(eng, children=False),
                    "dashboard_mb": sum(rss_mb(d, children=False) for d in dash),
                    "browser_mb": rss_mb(psutil.Process(browser_pid(pw)), children=True)
                    if browser_pid(pw)
                    else None,
                    **page_probe(page),
                }
                samples.append(sample)
                print(json.dumps(sample), flush=True)
                if time.monotonic() >= end:
                    break
                page.wait_for_timeout(args.every * 1000)
            browser.close()
    finally:
        engine.terminate()
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
    times = [s["t_s"] for s in samples]
    summary: dict[str, Any] = {"minutes": args.minutes, "samples": len(samples)}
    half = times[-1] / 2 if times else 0.0
    for key in ("engine_mb", "dashboard_mb", "browser_mb", "js_heap_mb", "dom_nodes"):
        pairs = [(s["t_s"], s[key]) for s in samples if isinstance(s.get(key), int | float)]
        if pairs:
            values = [v for _, v in pairs]
            late = [(t, v) for t, v in pairs if t >= half]
            summary[key] = {
                "first": values[0],
                "last": values[-1],
                "max": max(values),
                "growth_per_hour": slope_per_hour([t for t, _ in pairs], values),
                "growth_per_hour_second_half": slope_per_hour(
                    [t for t, _ in late], [v for _, v in late]
                ),
            }
    summary["distinct_first_values"] = len({s.get("first_value") for s in samples})
    summary["samples_with_error_text"] = sum(1 for s in samples if s.get("error_text") is True)
    print(json.dumps(summary))


def page_probe(page: Any) -> dict[str, Any]:
    """What the tab shows: charts drawn, the first headline value, any error text."""
    try:
        return dict(
            page.evaluate(
                """() => {
                    if (window.gc) { window.gc(); }
                    const heap = performance.memory ? performance.memory.usedJSHeapSize : null;
                    return {
                    js_heap_mb: heap === null ? null : Math.round(heap / 1048576 * 10) / 10,
                    dom_nodes: document.getElementsByTagName('*').length,
                    charts: document.querySelectorAll('.js-plotly-plot').length,
                    first_value: (document.querySelector("[data-testid='stMetricValue']")
                                  || {innerText: null}).innerText,
                    error_text: /Traceback|Exception/.test(document.body.innerText),
                    };
                }"""
            )
        )
    except Exception as exc:  # a busy tab must not end the soak
        return {"charts": None, "first_value": None, "error_text": f"probe failed: {exc}"}


def browser_pid(pw: Any) -> int | None:
    """PID of the Chromium main process (the newest chromium child of this process)."""
    me = psutil.Process()
    procs = [p for p in me.children(recursive=True) if "chromium" in p.name()]
    return min(procs, key=lambda p: p.create_time()).pid if procs else None


if __name__ == "__main__":
    main()
