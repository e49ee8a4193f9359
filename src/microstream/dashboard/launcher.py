"""Start an engine from the dashboard when none answers at the API URL.

The engine runs as a separate process (``microstream run --no-dashboard``) whose
API listens on the host and port of the dashboard's API URL; its output goes to
a log file whose tail the dashboard shows if it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from microstream.dashboard.engines import split_urls

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class LaunchedEngine:
    """An engine process the dashboard started."""

    process: subprocess.Popen[bytes]
    source: str
    log_path: Path
    started: float = field(default_factory=time.time)

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the engine's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def can_launch(api_url: str) -> bool:
    """An engine can be started here only for one API URL on this machine.

    A comma-separated list names several engines (distributed mode): those are
    started where they run, never from the dashboard.
    """
    urls = split_urls(api_url)
    return len(urls) == 1 and (urlsplit(urls[0]).hostname or "") in LOCAL_HOSTS


def engine_command(source: str) -> list[str]:
    """The command that starts an engine without its own dashboard."""
    return [sys.executable, "-m", "microstream.cli", "run", "--no-dashboard", "--source", source]


def start_engine(source: str, api_url: str) -> LaunchedEngine:
    """Start ``microstream run --no-dashboard --source SOURCE`` serving ``api_url``."""
    parts = urlsplit(api_url)
    env = dict(os.environ)
    env["MICROSTREAM_API_HOST"] = parts.hostname or "127.0.0.1"
    if parts.port is not None:
        env["MICROSTREAM_API_PORT"] = str(parts.port)
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the process owns it
        prefix="microstream-engine-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        engine_command(source),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log_file.close()
    return LaunchedEngine(process=process, source=source, log_path=Path(log_file.name))
