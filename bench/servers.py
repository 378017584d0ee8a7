"""The servers under test: how each is started on core 0, awaited, measured and stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SERVER_CORE = "0"
HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server: ``argv`` gets ``taskset -c 0`` in front and ``{port}`` filled in."""

    name: str
    argv: list[str]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    metrics_path: str | None = None
    note: str = ""


@dataclass
class RunningServer:
    """A started server: its process group is ours to stop."""

    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def sibyl_spec(tracking_uri: str, workdir: Path, model_name: str) -> ServerSpec:
    return ServerSpec(
        name="sibyl",
        argv=[str(VENV_BIN / "sibyl"), "serve", "--host", HOST, "--port", "{port}"],
        ready_path="/readyz",
        env={
            "MLFLOW_TRACKING_URI": tracking_uri,
            "SIBYL_DATA_DIR": str(workdir / "sibyl"),
            "SIBYL_SERVER__DEFAULT_MODEL": model_name,
        },
        metrics_path="/metrics",
        note="`sibyl serve`, defaults (1 worker)",
    )


def mlflow_spec(tracking_uri: str, model_uri: str) -> ServerSpec:
    return ServerSpec(
        name="mlflow",
        argv=[
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-h",
            HOST,
            "-p",
            "{port}",
            "-w",
            "1",
        ],
        ready_path="/ping",
        env={"MLFLOW_TRACKING_URI": tracking_uri},
        note="`mlflow models serve --env-manager local -w 1` (uvicorn, 1 worker = one core)",
    )


def raw_spec() -> ServerSpec:
    return ServerSpec(
        name="raw",
        argv=[
            str(VENV_BIN / "uvicorn"),
            "raw_asgi:app",
            "--app-dir",
            str(BENCH_DIR),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--lifespan",
            "off",
            "--no-access-log",
            "--log-level",
            "warning",
            "--host",
            HOST,
            "--port",
            "{port}",
        ],
        ready_path="/",
        note="constant-body ASGI app, uvicorn + uvloop + httptools (the ceiling)",
    )


SETTINGS_SNIPPET = (
    "from sibyl.settings import load_settings; print(load_settings().model_dump_json())"
)


def effective_settings(spec: ServerSpec, cwd: Path) -> dict[str, object]:
    """sibyl's settings as the server sees them: loaded with its environment and working
    directory, in a separate interpreter (on the runner's core)."""
    out = subprocess.run(
        [sys.executable, "-c", SETTINGS_SNIPPET],
        env=server_env(spec),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    settings: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(spec: ServerSpec) -> dict[str, str]:
    """Inherit the environment, one thread per library, the venv first on PATH (mlflow execs
    ``uvicorn`` by name)."""
    env = dict(os.environ) | THREAD_ENV | spec.env
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def start(spec: ServerSpec, logdir: Path) -> RunningServer:
    """Start ``spec`` on a free port, pinned to core 0, in its own process group."""
    port = free_port()
    argv = ["taskset", "-c", SERVER_CORE, *(a.replace("{port}", str(port)) for a in spec.argv)]
    log_path = logdir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            env=server_env(spec),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=logdir,
        )
    return RunningServer(spec, port, process, log_path)


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """Status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


def log_tail(server: RunningServer, lines: int = 30) -> str:
    text = server.log_path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def is_ready(server: RunningServer) -> bool:
    """True once the readiness path answers 200; raises if the server has exited."""
    if server.process.poll() is not None:
        raise RuntimeError(f"{server.spec.name} exited:\n{log_tail(server)}")
    return http_status(server.base_url + server.spec.ready_path) == 200


def wait_all_ready(
    fleet: list[RunningServer], timeout_s: float
) -> list[float | RuntimeError | TimeoutError]:
    """Poll every server's readiness path every 0.25 s until each answers 200, exits or passes
    ``timeout_s`` since its start: per server the seconds it took, or the error."""
    outcome: dict[int, float | RuntimeError | TimeoutError] = {}
    while len(outcome) < len(fleet):
        for i, server in enumerate(fleet):
            if i in outcome:
                continue
            try:
                if is_ready(server):
                    outcome[i] = time.monotonic() - server.started_at
                    continue
            except RuntimeError as error:
                outcome[i] = error
                continue
            if time.monotonic() - server.started_at >= timeout_s:
                outcome[i] = TimeoutError(
                    f"{server.spec.name} not ready after {timeout_s:.0f} s:\n{log_tail(server)}"
                )
        if len(outcome) < len(fleet):
            time.sleep(0.25)
    return [outcome[i] for i in range(len(fleet))]


def processes(server: RunningServer) -> list[psutil.Process]:
    """The server's process and all its descendants (mlflow runs uvicorn in a child)."""
    try:
        root = psutil.Process(server.process.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(server: RunningServer) -> float:
    """User + system CPU used so far by the server's live processes."""
    total = 0.0
    for proc in processes(server):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wait_idle(
    fleet: list[RunningServer], window_s: float = 0.3, max_share: float = 0.1, limit_s: float = 20.0
) -> float:
    """Wait until ``fleet`` together used less than ``max_share`` of a core over ``window_s``
    (a server still draining the backlog of a finished run would otherwise steal core 0 from the
    next one); bounded by ``limit_s``. Return the seconds waited."""
    started = time.monotonic()
    before = sum(cpu_seconds(s) for s in fleet)
    while True:
        time.sleep(window_s)
        now = sum(cpu_seconds(s) for s in fleet)
        waited = time.monotonic() - started
        if now - before < max_share * window_s or waited >= limit_s:
            return waited
        before = now


def affinities(server: RunningServer) -> list[list[int]]:
    """CPU affinity of every server process: each must be [0]."""
    found: list[list[int]] = []
    for proc in processes(server):
        try:
            found.append(sorted(proc.cpu_affinity() or []))
        except psutil.NoSuchProcess:
            continue
    return found


def stop(server: RunningServer, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL whatever is left after ``grace_s``."""
    procs = processes(server)
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    server.process.wait(timeout=grace_s)
