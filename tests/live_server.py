"""A real uvicorn process for tests that need one (browser tests, shutdown tests).

    with live_server({"ACQUISITION_DATABASE_URL": url, ...}) as server:
        httpx.get(server.url + "/healthz")
        server.stop()              # SIGTERM and wait (also done on leaving the block)

The server runs in its own process group, with the test's environment plus `env`; its output
goes to a log file whose tail is shown when it fails to start. (Named live_server.py because
tests/server/ is the package of the `server`-marked tests.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

FACTORY = "acquisition.web.app:create_app_from_env"
ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it; a tiny race remains)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text("utf-8", errors="replace")[-tail:]

    def send(self, sig: signal.Signals) -> None:
        """Send a signal to the server process (e.g. SIGKILL to test crash recovery)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` (SIGTERM: uvicorn drains in-flight requests and runs the lifespan's
        shutdown) and wait for the exit code; SIGKILL the group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group: the server and any workers it forked."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def inherited() -> dict[str, str]:
    """This process's environment without the service's own settings (and the metrics folder),
    so the server runs on exactly the settings a test gives it."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACQUISITION_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:g} s")


@contextmanager
def live_server(
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    workers: int = 1,
    factory: str = FACTORY,
    args: Sequence[str] = (),
    cwd: Path | None = None,
    log_dir: Path | None = None,
    startup_timeout: float = 30.0,
    stop_timeout: float = 30.0,
) -> Iterator[LiveServer]:
    """Start `uvicorn --factory <factory>` on a free port, wait for /healthz, yield, SIGTERM.

    `env` is added to this process's environment (PATH etc. stay; inherited ACQUISITION_*
    settings do not, so nothing of the test runner's shell leaks in). The caller owns the
    database: the app does not migrate on start, so point it at a migrated one. The output
    goes to `log_dir` (default: a new temporary folder) as server-<port>.log.
    """
    port = port or free_port(host)
    log = Path(log_dir or tempfile.mkdtemp(prefix="acq-server-")) / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**inherited(), **env},
            cwd=cwd or ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C in pytest does not reach it
        )
    server = LiveServer(process, host, port, log)
    try:
        try:
            wait_healthy(server.url, process, startup_timeout)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; its output:\n{server.output()}") from None
        yield server
    finally:
        server.stop(timeout=stop_timeout)
