"""Reproducible builds: one lock file for every Python dependency, used everywhere they install.

constraints.txt is `uv pip compile requirements.in` (make lock). Every install of the project's
dependencies (scripts/bootstrap.sh, each Dockerfile, the compose smoke's Compose v2) goes through
it, and every base image is pinned to a release, so a build resolves the same software
whatever day it runs.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from .conftest import COMPOSE_FILE, IMAGES, ROOT, dockerfile, dockerfile_instructions, dockerfile_path

LOCK = ROOT / "constraints.txt"
_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    """Package -> version of constraints.txt (every line a name==version pin, maybe with markers)."""
    pins = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", line)
        assert match, f"not an exact pin: {raw}"
        pins[canonical(match.group(1))] = match.group(2)
    return pins


def requirement_files() -> list[str]:
    return ["requirements-dev.txt", "tests/compose/requirements.txt"]


def pyprojects() -> list[str]:
    inputs = (ROOT / "requirements.in").read_text().splitlines()
    return [f"{line.strip()[2:]}/pyproject.toml" for line in inputs if line.startswith("./")]


def direct_requirements() -> dict[str, str]:
    """Every requirement the inputs name (name -> the requirement as written)."""
    found = {}
    for path in requirement_files():
        for raw in (ROOT / path).read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                found[canonical(_REQUIREMENT_NAME.match(line).group(1))] = line
    for path in pyprojects():
        project = tomllib.loads((ROOT / path).read_text())["project"]
        for requirement in project.get("dependencies", []):
            found[canonical(_REQUIREMENT_NAME.match(requirement).group(1))] = requirement
    return found


LOCAL = {"clinic-chassis"}


def test_the_lock_inputs_are_every_requirement_file_and_every_project():
    inputs = (ROOT / "requirements.in").read_text()
    for path in requirement_files():
        assert f"-r {path}" in inputs
    projects = {
        p.parent for p in ROOT.glob("**/pyproject.toml") if ".venv" not in p.parts and "var" not in p.parts
    }
    projects.discard(ROOT)
    assert {ROOT / p.removesuffix("/pyproject.toml") for p in pyprojects()} == projects


def test_every_requirement_is_pinned_in_the_lock_at_a_version_it_allows():
    pins = locked()
    for name, requirement in direct_requirements().items():
        if name in LOCAL:
            continue
        assert name in pins, f"{requirement} is not in constraints.txt: run make lock"
        exact = re.search(r"==\s*([^\s,;]+)", requirement)
        if exact:
            assert pins[name] == exact.group(1), (
                f"{requirement} but constraints.txt has {pins[name]}: make lock"
            )


def test_the_lock_leaves_out_the_projects_own_packages():
    assert not {name for name in locked() if name.startswith("clinic-")}


@pytest.mark.parametrize("image", IMAGES)
def test_every_image_installs_through_the_lock(image):
    instructions = dockerfile_instructions(dockerfile(image))
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert "constraints.txt constraints.txt" in copies, dockerfile_path(image)
    installs = [args for keyword, args in instructions if keyword == "RUN" and "pip install" in args]
    assert installs and all("-c constraints.txt" in args for args in installs)
    assert not any(re.search(r"\w==\d", args) for args in installs), "pins belong in constraints.txt"


def test_the_build_context_holds_the_lock():
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text().splitlines()


def test_bootstrap_installs_through_the_lock():
    assert "-c constraints.txt" in (ROOT / "scripts" / "bootstrap.sh").read_text()


def test_the_compose_smoke_installs_compose_through_the_lock():
    assert '"-c", str(ROOT / "constraints.txt")' in (ROOT / "tests" / "compose" / "engine.py").read_text()


def test_make_lock_compiles_the_inputs_with_uv():
    makefile = (ROOT / "Makefile").read_text()
    (recipe,) = re.findall(r"^lock:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert "uv pip compile requirements.in --output-file constraints.txt" in recipe
    assert "uv==" in (ROOT / "requirements-dev.txt").read_text()


def base_images() -> list[str]:
    images = []
    for image in IMAGES:
        images += [
            args.split()[0]
            for keyword, args in dockerfile_instructions(dockerfile(image))
            if keyword == "FROM"
        ]
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    images += [
        spec["image"] for spec in services.values() if "build" not in spec and "clinic" not in spec["image"]
    ]
    return sorted(set(images))


@pytest.mark.parametrize("image", base_images())
def test_every_base_image_is_pinned_to_a_patch_release(image):
    name, _, tag = image.partition(":")
    # PostgreSQL's releases are major.minor (15.14); the others' are major.minor.patch.
    release = r"\d+\.\d+" if name == "postgres" else r"v?\d+\.\d+\.\d+"
    assert re.match(release + r"(-|$)", tag), f"{image}: pin a patch release, not a moving tag"
