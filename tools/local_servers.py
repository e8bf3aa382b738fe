"""Local stand-ins for the production services, on loopback: a BigQuery-API server
(`local-bigquery`, installed by `make bigquery-emulator` into `.bq-emulator`) and the Pub/Sub
emulator of the Google Cloud CLI. The tests and `make demo-bigquery` start and stop them here.

    python -m tools.local_servers start --data_dir DIR [--port 9050]   # prints the endpoint
    python -m tools.local_servers stop --data_dir DIR
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipelines.options import StrictParser

REPO = Path(__file__).resolve().parent.parent
BIGQUERY_ENV = REPO / ".bq-emulator"
BIGQUERY_SERVER = BIGQUERY_ENV / "bin" / "local-bigquery"
# Where the server's DuckDB looks for its extensions: HOME/.duckdb/extensions (made by the
# Makefile from the extension packages, so nothing is downloaded).
BIGQUERY_HOME = BIGQUERY_ENV / "home"
PUBSUB_EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")


class ServerUnavailable(RuntimeError):
    """The server is not installed here (the message says how to get it)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    name: str
    process: subprocess.Popen
    address: str  # host:port
    log: Path

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _start(name: str, command: list[str], port: int, log: Path, ready, env: dict | None = None,
           timeout_s: float = 90.0) -> Server:  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)  # fmt: skip
    server = Server(name, process, f"127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while not ready(server.address):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not start on {server.address}; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)
    return server


def _answers_http(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/bigquery/v2/projects/local/datasets", timeout=2):
            return True
    except OSError:
        return False


def _accepts_tcp(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def start_bigquery(data_dir: Path, port: int | None = None) -> Server:
    """Starts local-bigquery on 127.0.0.1 with its data under `data_dir`; its endpoint is
    `http://` + the server's address."""
    if not BIGQUERY_SERVER.exists():
        raise ServerUnavailable(
            f"the local BigQuery-API server is not installed ({BIGQUERY_SERVER}); `make bigquery-emulator` "
            "installs it (it needs Python 3.13, e.g. from pyenv)"
        )
    port = port or free_port()
    command = [str(BIGQUERY_SERVER), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--grpc-port", str(free_port()), "--data-dir", str(data_dir)]  # fmt: skip
    return _start("local-bigquery", command, port, data_dir / "server.log", _answers_http,
                  env={"HOME": str(BIGQUERY_HOME)})  # fmt: skip


def start_pubsub(log_dir: Path, port: int | None = None) -> Server:
    """Starts the Pub/Sub emulator on 127.0.0.1 (set PUBSUB_EMULATOR_HOST to its address)."""
    if not PUBSUB_EMULATOR.exists():
        raise ServerUnavailable(
            f"the Pub/Sub emulator is not installed here ({PUBSUB_EMULATOR}: google-cloud-cli-pubsub-emulator)"
        )
    port = port or free_port()
    command = [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={port}"]
    return _start("pubsub-emulator", command, port, log_dir / "pubsub-emulator.log", _accepts_tcp)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.local_servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--data_dir", required=True, help="The BigQuery server's data and its pid file.")
    parser.add_argument("--port", type=int, default=9050)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).resolve()
    pid_file = data_dir / "server.pid"
    if args.action == "stop":
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()
        return 0
    if pid_file.exists() and _answers_http(f"127.0.0.1:{args.port}"):
        print(f"http://127.0.0.1:{args.port}")
        return 0
    try:
        server = start_bigquery(data_dir, args.port)
    except ServerUnavailable as exc:
        parser.error(str(exc))
    pid_file.write_text(str(server.process.pid))
    print(f"http://{server.address}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
