"""Base images for the compose stack: the official ones, or local stand-ins under their names.

The stack needs four public images: python (the project Dockerfiles' FROM), postgres,
rabbitmq and traefik (docker-compose.yml). Each one the engine lacks is pulled; when the
registry cannot be reached (as on these machines) a stand-in is built instead, under the
official name and tag, from a Debian rootfs made with debootstrap and Debian's packages
(tests/compose/standins/<name>/: each Dockerfile says which contract it keeps). The rootfs
tarball is kept in var/compose-smoke, the images in the engine: the next run reuses both.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .engine import HERE, ROOT, STATE, Engine, SmokeError, run, say

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_IMAGE = f"clinic-smoke/debian:{DEBIAN_SUITE}"
STANDINS = HERE / "standins"
PULL_TIMEOUT = 60
# The project's Dockerfiles: their FROM images are base images too.
DOCKERFILES = [
    "identity-service/Dockerfile",
    "doctor-service/Dockerfile",
    "scheduling-service/Dockerfile",
    "booking-service/Dockerfile",
    "gateway/docs/Dockerfile",
]


def base_images(compose_file: Path) -> list[str]:
    """The public images the stack runs or builds from, e.g. ``postgres:15.14-alpine``."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    # The smoke starts the default stack: a profile's services (observability) are not pulled.
    services = {name: spec for name, spec in services.items() if not spec.get("profiles")}
    built = {spec.get("image") for spec in services.values() if "build" in spec}
    images = {spec["image"] for spec in services.values() if "image" in spec} - built
    for dockerfile in DOCKERFILES:
        for match in re.finditer(r"^FROM\s+(\S+)", (ROOT / dockerfile).read_text(), re.M):
            images.add(match.group(1))
    return sorted(images)


def standin_of(image: str) -> Path:
    """The stand-in's build folder for an official image (by repository name)."""
    repository = image.split(":", 1)[0].split("/")[-1]
    folder = STANDINS / repository
    if not (folder / "Dockerfile").is_file():
        raise SmokeError(f"{image} is not in the engine, cannot be pulled, and has no stand-in")
    return folder


def pull(engine: Engine, image: str) -> bool:
    try:
        result = subprocess.run(
            ["docker", "pull", "-q", image], env=engine.env, capture_output=True, timeout=PULL_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def debian_rootfs() -> Path:
    """A minimal Debian rootfs tarball (debootstrap), made once and kept."""
    tarball = STATE / f"debian-{DEBIAN_SUITE}-minbase.tar"
    if tarball.is_file():
        return tarball
    STATE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=STATE) as rootfs:
        say(f"debootstrap {DEBIAN_SUITE} (minbase)")
        run(
            ["debootstrap", "--variant=minbase", DEBIAN_SUITE, rootfs, DEBIAN_MIRROR],
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(Path(rootfs) / "var/cache/apt/archives", ignore_errors=True)
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", rootfs, "-cf", str(partial), "."])
        partial.rename(tarball)
    return tarball


def host_pip_conf() -> str:
    """pip settings for builds inside the python stand-in: this machine's index and CA bundle."""
    lines = ["[global]", "cert = /etc/ssl/certs/clinic-smoke-host-ca.crt", "timeout = 180"]
    for key in ("index-url", "extra-index-url", "trusted-host"):
        result = subprocess.run(
            ["python3", "-m", "pip", "config", "get", f"global.{key}"], capture_output=True, text=True
        )
        value = result.stdout.strip()
        # Only network indexes: local folders of this machine are not in the image.
        urls = [url for url in value.split() if url.startswith(("http://", "https://"))]
        if result.returncode == 0 and urls:
            lines.append(f"{key} = {' '.join(urls)}")
    return "\n".join(lines) + "\n"


def host_ca_bundle() -> Path:
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if Path(candidate).is_file():
            return Path(candidate)
    raise SmokeError("no CA bundle on this machine (/etc/ssl/certs/ca-certificates.crt)")


def build_standin(engine: Engine, image: str) -> None:
    folder = standin_of(image)
    with tempfile.TemporaryDirectory(prefix="standin-", dir=STATE) as context:
        shutil.copytree(folder, context, dirs_exist_ok=True)
        name = folder.name
        if name == "python":
            shutil.copy(host_ca_bundle(), Path(context) / "ca-bundle.crt")
            (Path(context) / "pip.conf").write_text(host_pip_conf())
        elif name == "traefik":
            traefik = shutil.which("traefik") or str(ROOT / ".venv" / "bin" / "traefik")
            shutil.copy(traefik, Path(context) / "traefik")
        log = STATE / f"standin-{name}.log"
        with log.open("w") as output:
            result = subprocess.run(
                ["docker", "build", "--network", "host", "-t", image, context],
                env={**engine.env, "DOCKER_BUILDKIT": "0"},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            raise SmokeError(f"building the stand-in {image} failed; see {log}")


def ensure_base_images(engine: Engine, compose_file: Path) -> list[str]:
    """Every base image in the engine; returns those that are stand-ins."""
    missing = [image for image in base_images(compose_file) if not engine.has_image(image)]
    missing = [image for image in missing if not pull(engine, image)]
    if missing:
        if not engine.has_image(DEBIAN_IMAGE):
            rootfs = debian_rootfs()
            say(f"importing {DEBIAN_IMAGE}")
            with rootfs.open("rb") as tar:
                engine.docker("import", "-", DEBIAN_IMAGE, stdin=tar, stdout=subprocess.DEVNULL)
        say(f"building stand-ins for {', '.join(missing)}")
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            for future in [pool.submit(build_standin, engine, image) for image in missing]:
                future.result()
    standins = []
    for image in base_images(compose_file):
        result = subprocess.run(
            [
                "docker",
                "image",
                "inspect",
                "--format",
                '{{index .Config.Labels "org.clinic.stand-in"}}',
                image,
            ],
            env=engine.env,
            capture_output=True,
            text=True,
        )
        if result.stdout.strip() not in ("", "<no value>"):
            standins.append(image)
    return standins
