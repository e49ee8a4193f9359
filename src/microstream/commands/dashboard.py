"""``microstream dashboard``: the Streamlit UI alone, attached to a running engine.

:func:`start_dashboard_process` is also what ``microstream run`` calls to start
the UI beside the engine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

DEFAULT_PORT = 8501
DEFAULT_ADDRESS = "127.0.0.1"


def app_path() -> Path:
    """The Streamlit entry script of the dashboard."""
    from microstream import dashboard

    return Path(dashboard.__file__).resolve().parent / "app.py"


def streamlit_command(port: int, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The ``streamlit run`` command line of the dashboard (headless, no usage stats)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path()),
        "--server.headless=true",
        f"--server.port={port}",
        f"--server.address={address}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=viewer",
        "--theme.base=light",
    ]


def start_dashboard_process(
    port: int = DEFAULT_PORT,
    api_url: str | None = None,
    *,
    address: str = DEFAULT_ADDRESS,
    quiet: bool = False,
) -> subprocess.Popen[bytes]:
    """Start the dashboard as a child process and return it (stop it with ``terminate()``).

    Args:
        port: HTTP port of the UI (8501: http://localhost:8501).
        api_url: engine API URL (default: ``MICROSTREAM_API_URL`` or
            ``http://127.0.0.1:<MICROSTREAM_API_PORT or 8765>``).
        address: address to bind; 127.0.0.1 keeps the UI local.
        quiet: send Streamlit's own output to /dev/null.
    """
    env = dict(os.environ)
    env["MICROSTREAM_API_URL"] = api_url or default_api_url()
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    output = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(
        streamlit_command(port, address),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
    )


def default_api_url() -> str:
    """``MICROSTREAM_API_URL``, else the engine API's default address."""
    url = os.environ.get("MICROSTREAM_API_URL")
    if url:
        return url
    host = os.environ.get("MICROSTREAM_API_HOST") or "127.0.0.1"
    port = os.environ.get("MICROSTREAM_API_PORT") or "8765"
    return f"http://{host}:{port}"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` sub-command."""
    parser = subparsers.add_parser(
        "dashboard", help="run the live dashboard, attached to a running engine's API"
    )
    parser.add_argument("--port", type=int, default=None, help="UI port (default 8501)")
    parser.add_argument(
        "--api-url",
        default=None,
        help="engine API URL (default from env); several engines: a comma-separated list, "
        "or a host name with one address per engine",
    )
    parser.add_argument(
        "--address", default=DEFAULT_ADDRESS, help="address to bind (default 127.0.0.1)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    port = args.port or int(os.environ.get("MICROSTREAM_DASHBOARD_PORT") or DEFAULT_PORT)
    api_url = args.api_url or default_api_url()
    print(f"dashboard on http://{args.address}:{port} (engine API {api_url})", file=sys.stderr)
    process = start_dashboard_process(port, api_url, address=args.address)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 130
