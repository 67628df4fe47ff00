"""What the deployment tests compare: the Procfile, the services' Settings, the gateway's files.

The deployment files (Dockerfiles, docker-compose.yml, deploy/k8s) must start the same command
lines with the same variables as the local runner, which the e2e tests exercise. These helpers
read the sources of truth; no Docker engine or cluster is needed.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
# The API docs app (gateway/docs): an image and a process like a service's, without a database.
DOCS = "docs"
IMAGES = (*SERVICES, DOCS)
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_ENV_EXAMPLE = ROOT / "deploy" / "compose.env.example"
K8S_DIR = ROOT / "deploy" / "k8s"
GATEWAY_DIR = ROOT / "gateway"

# ${NAME} or ${NAME:-default} in a Procfile command line.
_PROCFILE_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-([^}]*))?\}")


def require_tool(name: str) -> str:
    """The path of a command-line tool from the venv or PATH; fails under CI=true when missing."""
    candidates = [Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (requirements-dev.txt installs it into the venv)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class ProcfileLine:
    name: str
    command: str

    @property
    def words(self) -> list[str]:
        return shlex.split(self.command)

    @property
    def variables(self) -> dict[str, str | None]:
        """The variables the line reads, with the default it gives each (None: no default)."""
        return {m.group(1): m.group(2) for m in _PROCFILE_VARIABLE.finditer(self.command)}

    @property
    def assignments(self) -> set[str]:
        """Variables set by ``NAME=value`` words before the command."""
        names = set()
        for word in self.words:
            match = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=.*", word, re.S)
            if not match:
                break
            names.add(match.group(1))
        return names


@cache
def procfile() -> dict[str, ProcfileLine]:
    lines = {}
    for raw in (ROOT / "Procfile").read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        name, command = raw.split(":", 1)
        lines[name.strip()] = ProcfileLine(name.strip(), command.strip())
    return lines


def procfile_port(service: str) -> tuple[str, int]:
    """The port variable of a service's Procfile line and its default (e.g. IDENTITY_PORT, 8001)."""
    line = procfile()[service]
    port_word = line.words[line.words.index("--port") + 1]
    match = _PROCFILE_VARIABLE.fullmatch(port_word)
    assert match, f"the Procfile's {service} line takes its port from a variable: {port_word}"
    return match.group(1), int(match.group(2))


@dataclass(frozen=True)
class SettingsVariable:
    names: tuple[str, ...]
    default: object
    required: bool


@cache
def settings_variables(service: str) -> tuple[SettingsVariable, ...]:
    """Every environment variable a service's Settings reads (each field's validation aliases)."""
    settings = importlib.import_module(f"{service}.config").Settings
    variables = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names: tuple[str, ...] = (field.alias or name.upper(),)
        elif isinstance(alias, str):
            names = (alias,)
        else:  # AliasChoices
            names = tuple(choice for choice in alias.choices if isinstance(choice, str))
        variables.append(SettingsVariable(names, field.default, field.is_required()))
    return tuple(variables)


def settings_names(service: str) -> set[str]:
    return {name for variable in settings_variables(service) for name in variable.names}


# Settings only `<service> provision` and `migrate` read: the administrators' and the schema
# owner's credentials. A service's running container must never hold them (least privilege).
PRIVILEGED_VARIABLE = re.compile(
    r"(^|_)(ADMIN_DATABASE_URL|MIGRATION_DATABASE_URL|AMQP_ADMIN_URL|RABBITMQ_MANAGEMENT_URL)$"
)


def is_privileged(variable: SettingsVariable) -> bool:
    return any(PRIVILEGED_VARIABLE.search(name) for name in variable.names)


def variables_a_deployment_must_set(service: str) -> list[SettingsVariable]:
    """Settings whose default is wrong in a service's container: required ones, and local addresses
    (not the privileged ones, which only its migration job gets)."""
    return [
        variable
        for variable in settings_variables(service)
        if not is_privileged(variable)
        and (
            variable.required
            or (isinstance(variable.default, str) and re.search(r"127\.0\.0\.1|localhost", variable.default))
        )
    ]


def privileged_variables(service: str) -> list[SettingsVariable]:
    """The settings a migration job must set (provision and migrate) and a service never gets."""
    return [variable for variable in settings_variables(service) if is_privileged(variable)]


# Settings without a local-address default that are still unsafe to leave unset in a
# deployment: identity signs with an ephemeral key unless given one, so tokens would die with
# each restart and replicas would reject each other's tokens.
ONE_OF_MUST_BE_SET = {"identity": [("JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY_FILE")]}


def allowed_variables(service: str) -> set[str]:
    """What may be passed to a service: what its Settings or its Procfile line read."""
    return settings_names(service) | set(procfile()[service].variables) | procfile()[service].assignments


@cache
def gateway_variables() -> set[str]:
    """Variables gateway/run.sh and the dynamic configuration templates read."""
    names = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (GATEWAY_DIR / "run.sh").read_text()))
    for template in (GATEWAY_DIR / "dynamic").glob("*.yml"):
        names |= set(re.findall(r'env\s+"([A-Z_][A-Z0-9_]*)"', template.read_text()))
    return names


@cache
def gateway_template_defaults() -> dict[str, str]:
    """``env "NAME" | default "value"`` pairs of the dynamic configuration templates."""
    defaults = {}
    for template in (GATEWAY_DIR / "dynamic").glob("*.yml"):
        for name, value in re.findall(r'env\s+"([A-Z_]+)"\s*\|\s*default\s+"([^"]*)"', template.read_text()):
            defaults[name] = value
    return defaults


# ------------------------------------------------------------------ compose interpolation

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Interpolation:
    name: str
    op: str | None  # None, "-", ":-", "?", ":?"
    arg: str | None


def interpolations(value: object) -> list[Interpolation]:
    """Every ${VAR...} in a compose value (recursively)."""
    found: list[Interpolation] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += interpolations(key) + interpolations(item)
    elif isinstance(value, list):
        for item in value:
            found += interpolations(item)
    elif isinstance(value, str):
        for match in _INTERPOLATION.finditer(value):
            if match.group("escaped"):
                continue
            name = match.group("name") or match.group("bare")
            found.append(Interpolation(name, match.group("op"), match.group("arg")))
    return found


def interpolate(value: object, env: dict[str, str]) -> object:
    """A compose value with ${VAR}, ${VAR:-default} and ${VAR:?error} resolved from ``env``."""
    if isinstance(value, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        present = name in env and (env[name] != "" or op not in (":-", ":?"))
        if present:
            return env[name]
        if op in ("-", ":-"):
            return arg or ""
        if op in ("?", ":?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _INTERPOLATION.sub(replace, value)


@cache
def compose_raw() -> dict:
    """docker-compose.yml as written (YAML anchors and merge keys resolved, ${...} kept)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def example_env() -> dict[str, str]:
    """deploy/compose.env.example, with the required secrets given sample values."""
    env = {}
    for raw in COMPOSE_ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        env[name.strip()] = value.strip()
    for name, value in env.items():
        if value == "":
            env[name] = "" if name.startswith(("ADMIN_", "JWT_PRIVATE_KEY")) else f"sample-{name.lower()}"
    return env


@cache
def _compose_resolved() -> str:
    return json.dumps(interpolate(compose_raw(), example_env()))


def compose() -> dict:
    """docker-compose.yml as compose would run it with deploy/compose.env.example's values."""
    return json.loads(_compose_resolved())


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def dockerfile_path(image: str) -> str:
    """A service's Dockerfile, or the docs app's, relative to the repository root."""
    return "gateway/docs/Dockerfile" if image == DOCS else f"{image}-service/Dockerfile"


def dockerfile(image: str) -> str:
    return (ROOT / dockerfile_path(image)).read_text()


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions = []
    logical = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        logical = ""
    return instructions


def exec_form(arguments: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD arguments."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value)
    return value


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
