"""Run ``bentoml serve`` on a free localhost port for tests and benchmarks.

:func:`serve` starts the server, waits until ``/readyz`` answers 200 and, on exit, stops the
whole process tree. Used by the service tests and ``bench/serve.py``; not by the service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``bentoml serve`` and every process it started.

    The CLI's process group is not enough: circus starts each service worker in a process
    group of its own, and a worker can outlive a CLI that exits on SIGTERM. So the whole
    process tree is recorded first, then terminated, then killed if still there.
    """
    import psutil

    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=15)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def serve(
    target: str, cwd: Path, log: Path, env: Mapping[str, str], timeout: float = 180.0
) -> Iterator[Server]:
    """``bentoml serve <target>`` on a free localhost port until /readyz answers 200.

    ``env`` is added to this process's environment (e.g. ``BENTOML_HOME``). Raises
    RuntimeError, with the end of the server log, if it exits or is not ready in time.
    """
    import httpx

    port = free_port()
    bentoml_cli = Path(sys.executable).parent / "bentoml"
    cmd = [str(bentoml_cli), "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**os.environ, "BENTOML_DO_NOT_TRACK": "true", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def failure(what: str) -> RuntimeError:
        return RuntimeError(f"{what}:\n" + log.read_text(errors="replace")[-3000:])

    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise failure(f"bentoml serve exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise failure(f"{url}/readyz not ready after {timeout:.0f} s")
            time.sleep(0.5)
        yield Server(url, process, log)
    finally:
        stop(process)


def service_workers(server: Server) -> dict[str, object]:
    """The worker processes (``psutil.Process``) of a running server, by BentoML service name.

    ``artist_id`` is the entry service (it reads and decodes uploads), ``artist_id_model`` and
    ``artist_id_explainer`` the services holding models. For benchmarks that watch memory.
    """
    import psutil

    out: dict[str, object] = {}
    for proc in psutil.Process(server.process.pid).children(recursive=True):
        args = proc.cmdline()
        if "_bentoml_impl.worker.service" in args and "--service-name" in args:
            out[args[args.index("--service-name") + 1]] = proc
    return out
