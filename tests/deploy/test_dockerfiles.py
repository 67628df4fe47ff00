"""The Dockerfiles: the services' one shared pattern, and every image's Procfile command, hadolint-clean."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from .conftest import (
    DOCS,
    IMAGES,
    ROOT,
    SERVICES,
    dockerfile,
    dockerfile_instructions,
    dockerfile_path,
    exec_form,
    procfile,
    procfile_port,
    require_tool,
)

BASE_IMAGE = "python:3.11.14-slim-bookworm"


def stages(service: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, split into build stages."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(dockerfile(service)):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def runtime(service: str) -> list[tuple[str, str]]:
    return stages(service)[-1]


def arguments(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for args in arguments(instructions, "ENV"):
        for word in shlex.split(args):
            name, _, value = word.partition("=")
            env[name] = value
    return env


@pytest.mark.parametrize("service", IMAGES)
def test_hadolint_finds_nothing_in_the_dockerfile(service):
    hadolint = require_tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", dockerfile_path(service)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_four_dockerfiles_share_one_pattern():
    """Same text but for name and port; the CMD is each one's Procfile line (tested below)."""

    def normalised(service: str) -> str:
        variable, port = procfile_port(service)
        text = "\n".join(line for line in dockerfile(service).splitlines() if not line.startswith("CMD "))
        return (
            text.replace(variable, "<PORT_VARIABLE>").replace(str(port), "<PORT>").replace(service, "<name>")
        )

    first = normalised(SERVICES[0])
    for service in SERVICES[1:]:
        assert normalised(service) == first, f"{service}-service/Dockerfile left the shared pattern"


@pytest.mark.parametrize("service", IMAGES)
def test_the_image_starts_the_procfile_command_line(service):
    (cmd,) = arguments(runtime(service), "CMD")
    shell, flag, line = exec_form(cmd)
    assert (shell, flag) == ("sh", "-c")
    words = shlex.split(line)
    assert words.count("exec") == 1 and words[words.index("exec") + 1] == "uvicorn", (
        "uvicorn must replace the shell (exec), so that it gets the stop signal"
    )
    words.remove("exec")
    assert words == procfile()[service].words


@pytest.mark.parametrize("service", IMAGES)
def test_the_image_listens_on_all_interfaces_at_the_conventional_port(service):
    variable, port = procfile_port(service)
    env = env_of(runtime(service))
    assert env["SERVICE_HOST"] == "0.0.0.0"
    assert env[variable] == str(port)
    assert arguments(runtime(service), "EXPOSE") == [str(port)]


@pytest.mark.parametrize("service", IMAGES)
def test_the_image_checks_liveness_with_python_at_its_port(service):
    variable, port = procfile_port(service)
    (healthcheck,) = arguments(runtime(service), "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    words = exec_form(command)
    assert words[:2] == ["python", "-c"], "the slim image has no curl: the check uses python"
    assert "/health/live" in words[2] and variable in words[2] and str(port) in words[2]


@pytest.mark.parametrize("service", IMAGES)
def test_both_stages_build_on_python_slim_and_the_runtime_gets_only_the_venv(service):
    all_stages = stages(service)
    assert len(all_stages) == 2
    assert [args.split()[0] for _, args in (s[0] for s in all_stages)] == [BASE_IMAGE, BASE_IMAGE]
    assert arguments(runtime(service), "COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert arguments(runtime(service), "ADD") == []
    for command in arguments(runtime(service), "RUN"):
        assert not re.search(r"apt-get|apk|gcc|build-essential|pip ", command), command


@pytest.mark.parametrize("service", SERVICES)
def test_the_builder_puts_alembic_ini_and_migrations_where_the_cli_looks(service):
    builder = " ".join(arguments(stages(service)[0], "RUN"))
    assert f"import {service}.cli" in builder and "ALEMBIC_INI" in builder
    assert f"{service}-service/alembic.ini" in builder and f"{service}-service/migrations" in builder
    installs = [args for args in arguments(stages(service)[0], "RUN") if "pip install" in args]
    assert installs and "./libs/chassis" in installs[0] and f"./{service}-service" in installs[0]
    assert "-e " not in installs[0], "an editable install would need the sources at run time"


def test_the_docs_builder_installs_the_app_and_checks_the_files_its_pages_load():
    installs = [args for args in arguments(stages(DOCS)[0], "RUN") if "pip install" in args]
    assert installs and "./libs/chassis" in installs[0] and "./gateway/docs" in installs[0]
    assert "-e " not in installs[0], "an editable install would need the sources at run time"
    assert "load_assets()" in installs[0]


@pytest.mark.parametrize("service", IMAGES)
def test_the_image_runs_as_a_numeric_non_root_user(service):
    (user,) = arguments(runtime(service), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit())


# ------------------------------------------------------------------ .dockerignore


def dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        patterns.append((negated, pattern.strip("/")))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    """Docker's pattern match (filepath.Match plus ``**``) of a path or one of its parents."""
    regex = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern):
        if part in ("**/", "**"):
            regex += "(?:.*/)?" if part == "**/" else ".*"
        elif part == "*":
            regex += "[^/]*"
        elif part == "?":
            regex += "[^/]"
        else:
            regex += re.escape(part)
    parts = path.split("/")
    return any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1))


def in_build_context(path: str) -> bool:
    excluded = False
    for negated, pattern in dockerignore_patterns():
        if _matches(pattern, path):
            excluded = not negated
    return not excluded


def needed_by_the_images(path: Path, project: Path) -> bool:
    """Whether pip or `<name> migrate` reads this file of a project (chassis or a service)."""
    parts = path.relative_to(project).parts
    if "__pycache__" in parts or path.suffix == ".pyc":
        return False
    return path.name in ("pyproject.toml", "alembic.ini") or parts[0] in ("src", "migrations")


def test_the_build_context_holds_what_the_dockerfiles_copy():
    projects = [
        ROOT / "libs" / "chassis",
        *(ROOT / f"{s}-service" for s in SERVICES),
        ROOT / "gateway" / "docs",
    ]
    needed = [
        path.relative_to(ROOT).as_posix()
        for project in projects
        for path in project.rglob("*")
        if path.is_file() and needed_by_the_images(path, project) and ".egg-info" not in path.as_posix()
    ]
    assert len(needed) > 20
    missing = [path for path in needed if not in_build_context(path)]
    assert not missing, f".dockerignore leaves out files the images need: {missing[:10]}"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "identity-service/.env",
        ".venv/bin/python",
        ".git/config",
        "var/jwt/private.pem",
        "identity-service/var/jwt/private.pem",
        "identity-service/tests/unit/test_keys.py",
        "libs/chassis/src/clinic_chassis.egg-info/PKG-INFO",
        "doctor-service/src/doctor/__pycache__/main.cpython-311.pyc",
        "tests/e2e/conftest.py",
    ],
)
def test_the_build_context_leaves_out_secrets_state_and_tests(path):
    assert not in_build_context(path)
