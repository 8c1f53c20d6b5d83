"""The server in a subprocess on a free local port: what the tests, the load test and the browser check talk to.

Not part of the installed package; the tests and scripts import it from a clone.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the clone, whose package the server runs


class ServerProcess:
    """The server in a subprocess on a free local port, for tests, load tests and the browser check.

        with ServerProcess(["--artifacts", "artifacts"]) as server:
            server.url  # ready: /health said so
    """

    LAUNCH = "import sys; from sentiment_gru.serve.command import serve_main; sys.exit(serve_main())"

    def __init__(self, args: list[str], ready_timeout: float = 120.0) -> None:
        self.args, self.ready_timeout = list(args), ready_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = Path(tempfile.mkdtemp(prefix="sentiment-gru-serve-")) / "server.log"

    def __enter__(self) -> "ServerProcess":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server if it still runs (SIGTERM; SIGKILL if it has not exited a minute later) and remove its log."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.log.parent, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(self.log, "wb") as log:  # the child keeps its own descriptor
            command = [sys.executable, "-c", self.LAUNCH, *self.args, "--host", "127.0.0.1", "--port", str(self.port)]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        """Wait until /health says ready; RuntimeError with the server's output if it exits or takes too long."""
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server was not ready after {self.ready_timeout:.0f} s:\n{self.output()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
