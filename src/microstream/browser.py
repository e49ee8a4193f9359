"""Debian's Chromium, headless: where it is and the flags that make it work here.

Used by everything that drives the dashboard in a real browser (the browser
test, the soak benchmarks) through Playwright with
``launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)``. ``make system-deps``
installs it. Without the background-networking flags Chromium keeps trying to
reach Google's hosts, which a closed network refuses, many at a time.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
"""Debian's package (Playwright's own browser download is not used)."""

CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)
"""Flags for a headless run as root on a machine without outside network."""
