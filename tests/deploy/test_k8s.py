"""deploy/k8s: valid Kubernetes objects, the local runner's variables, the gateway's routing."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from chassis.testkit import free_port

from .conftest import (
    DOCS,
    GATEWAY_DIR,
    K8S_DIR,
    ONE_OF_MUST_BE_SET,
    ROOT,
    SERVICES,
    allowed_variables,
    dockerfile,
    privileged_variables,
    procfile,
    procfile_port,
    require_tool,
    variables_a_deployment_must_set,
)

OLDEST_KUBERNETES = "1.30.0"  # the oldest version the manifests must suit
TRAEFIK_GROUP = "traefik.io/v1alpha1"
CLUSTER_SCOPED = {"Namespace"}


# ------------------------------------------------------------------ rendering


def kustomization() -> dict:
    return yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())


def render_without_kustomize() -> list[dict]:
    """What `kubectl kustomize` makes of the base, for the features the base uses."""
    spec = kustomization()
    known = {
        "apiVersion",
        "kind",
        "namespace",
        "labels",
        "resources",
        "configMapGenerator",
        "images",
    }
    assert set(spec) <= known, f"the fallback renderer does not know {set(spec) - known}"
    resources: list[dict] = []
    for name in spec["resources"]:
        resources += [doc for doc in yaml.safe_load_all((K8S_DIR / name).read_text()) if doc]
    for generator in spec.get("configMapGenerator", []):
        data = {Path(f).name: (K8S_DIR / f).read_text() for f in generator["files"]}
        resources.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    images = {image["name"]: image for image in spec.get("images", [])}
    for resource in resources:
        metadata = resource.setdefault("metadata", {})
        if resource["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = spec["namespace"]
        for labels in spec.get("labels", []):
            metadata.setdefault("labels", {}).update(labels["pairs"])
        for container in containers_of(resource):
            name, _, tag = container["image"].partition(":")
            if name in images:
                container["image"] = f"{images[name].get('newName', name)}:{images[name].get('newTag', tag)}"
    return resources


@cache
def _kubectl_render() -> str | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    result = subprocess.run([kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def _rendered() -> str:
    text = _kubectl_render()
    if text is not None:
        return text
    return yaml.safe_dump_all(render_without_kustomize())


@cache
def rendered() -> tuple[dict, ...]:
    """The base as `kubectl apply -k deploy/k8s` would send it (kustomize when installed)."""
    return tuple(doc for doc in yaml.safe_load_all(_rendered()) if doc)


def containers_of(resource: dict, *, init: bool = True) -> list[dict]:
    template = resource.get("spec", {}).get("template", {}).get("spec", {})
    return (template.get("initContainers", []) if init else []) + template.get("containers", [])


@cache
def example_secrets() -> tuple[dict, ...]:
    """The Secrets of secrets.example.yaml: not in the base, created once by the operator."""
    return tuple(doc for doc in yaml.safe_load_all((K8S_DIR / "secrets.example.yaml").read_text()) if doc)


def find(kind: str, name: str | None = None) -> list[dict]:
    """Objects of the base, and for ``Secret`` those the operator creates from the example."""
    found = [
        r
        for r in (example_secrets() if kind == "Secret" else rendered())
        if r["kind"] == kind
        and (name is None or re.sub(r"-[a-z0-9]{10}$", "", r["metadata"]["name"]) == name)
    ]
    return found


def one(kind: str, name: str) -> dict:
    (resource,) = find(kind, name)
    return resource


def test_the_base_holds_no_secret_so_an_apply_never_overwrites_the_real_ones():
    assert [r["metadata"]["name"] for r in rendered() if r["kind"] == "Secret"] == []
    assert all(secret["kind"] == "Secret" for secret in example_secrets())
    assert all(
        secret["metadata"]["namespace"] == kustomization()["namespace"] for secret in example_secrets()
    )


def test_every_secret_the_base_uses_is_in_the_example():
    used = set()
    for resource in rendered():
        for container in containers_of(resource):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    used.add(source["secretRef"]["name"])
            for variable in container.get("env", []):
                if "secretKeyRef" in variable.get("valueFrom", {}):
                    used.add(variable["valueFrom"]["secretKeyRef"]["name"])
        for volume in resource.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if "secret" in volume:
                used.add(volume["secret"]["secretName"])
    assert used == {secret["metadata"]["name"] for secret in example_secrets()}


def test_the_fallback_renderer_makes_the_same_objects_as_kustomize():
    if _kubectl_render() is None:
        pytest.skip("kubectl is not installed: the tests use the fallback renderer")
    ids = {
        (r["kind"], re.sub(r"-[a-z0-9]{10}$", "", r["metadata"]["name"]), r["metadata"].get("namespace"))
        for r in yaml.safe_load_all(_kubectl_render())
    }
    assert ids == {
        (r["kind"], r["metadata"]["name"], r["metadata"].get("namespace")) for r in render_without_kustomize()
    }


# ------------------------------------------------------------------ schemas


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_every_kubernetes_object_is_valid_for_its_schema(version):
    checked = 0
    for resource in rendered():
        if resource["apiVersion"] == TRAEFIK_GROUP:
            continue
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{resource['kind']}/{resource['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )
        checked += 1
    assert checked >= 20


def test_traefik_objects_have_only_the_fields_their_custom_resources_define():
    # kubernetes-validate has no schemas for CRDs: a structural check of what the base uses.
    middleware_fields = {
        "headers": {"customRequestHeaders", "stsSeconds", "stsIncludeSubdomains"},
        "forwardAuth": {
            "address",
            "trustForwardHeader",
            "authRequestHeaders",
            "authResponseHeaders",
            "maxResponseBodySize",
            "headerField",
        },
        "rateLimit": {"average", "period", "burst", "sourceCriterion"},
        "errors": {"status", "statusRewrites", "service", "query"},
        "replacePath": {"path"},
        "retry": {"attempts"},
    }
    for middleware in find("Middleware"):
        assert middleware["apiVersion"] == TRAEFIK_GROUP
        ((kind, config),) = middleware["spec"].items()
        assert set(config) <= middleware_fields[kind], middleware["metadata"]["name"]
    names = {m["metadata"]["name"] for m in find("Middleware")}
    services = {s["metadata"]["name"]: s for s in find("Service")}
    for route in find("IngressRoute"):
        assert route["apiVersion"] == TRAEFIK_GROUP
        assert set(route["spec"]) <= {"entryPoints", "routes", "tls"}
        for entry in route["spec"]["routes"]:
            assert set(entry) <= {"match", "kind", "priority", "middlewares", "services"}
            assert all(set(m) == {"name"} and m["name"] in names for m in entry.get("middlewares", []))
            for backend in entry["services"]:
                ports = [p["port"] for p in services[backend["name"]]["spec"]["ports"]]
                assert backend["port"] in ports


# ------------------------------------------------------------------ the services


@pytest.mark.parametrize("service", SERVICES)
def test_the_deployment_runs_two_replicas_of_the_service_image(service):
    deployment = one("Deployment", service)
    assert deployment["spec"]["replicas"] == 2
    (container,) = containers_of(deployment, init=False)
    assert container["image"].split(":")[0].endswith(f"clinic/{service}")
    assert "command" not in container and "args" not in container, "the image's CMD is the Procfile line"


@pytest.mark.parametrize("service", SERVICES)
def test_the_probes_ask_readiness_and_liveness_on_the_service_port(service):
    (container,) = containers_of(one("Deployment", service), init=False)
    variable, port = procfile_port(service)
    (container_port,) = container["ports"]
    assert container_port == {"name": "http", "containerPort": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert environment(one("Deployment", service), container)[variable] == str(port)


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_object_exposes_the_port_other_services_call(service):
    _, port = procfile_port(service)
    (service_port,) = one("Service", service)["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (port, "http")
    assert (
        one("Service", service)["spec"]["selector"]
        == one("Deployment", service)["spec"]["selector"]["matchLabels"]
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_container_has_requests_and_limits_within_the_memory_budget(service):
    for resource in (one("Deployment", service), one("Job", f"{service}-migrate")):
        for container in containers_of(resource):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(
                resources["limits"]
            )
            limit = resources["limits"]["memory"]
            assert re.fullmatch(r"\d+Mi", limit) and 128 <= int(limit[:-2]) <= 512, limit


@pytest.mark.parametrize("service", SERVICES)
def test_every_pod_meets_the_restricted_pod_security_profile(service):
    (uid,) = re.findall(r"^USER (\d+)", dockerfile(service), re.M)
    for resource in (one("Deployment", service), one("Job", f"{service}-migrate")):
        pod = resource["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(uid)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in containers_of(resource):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}


def environment(resource: dict, container: dict) -> dict[str, str]:
    """A container's variables: its env, then every key of the ConfigMaps and Secrets it loads."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        data = one(kind, ref["name"]).get("stringData") or one(kind, ref["name"]).get("data") or {}
        env.update({k: str(v) for k, v in data.items()})
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
        else:
            ref = variable["valueFrom"].get("configMapKeyRef") or variable["valueFrom"]["secretKeyRef"]
            kind = "ConfigMap" if "configMapKeyRef" in variable["valueFrom"] else "Secret"
            data = one(kind, ref["name"]).get("stringData") or one(kind, ref["name"]).get("data")
            assert ref["key"] in data, f"{variable['name']}: {ref['name']} has no key {ref['key']}"
            env[variable["name"]] = str(data[ref["key"]])
    return env


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_given_to_a_service_container_is_one_it_reads(service):
    deployment = one("Deployment", service)
    for container in [*containers_of(deployment), *containers_of(one("Job", f"{service}-migrate"))]:
        unknown = set(environment(deployment, container)) - allowed_variables(service)
        assert not unknown, f"{service}/{container['name']}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_whose_default_is_wrong_in_a_pod_is_set(service):
    deployment = one("Deployment", service)
    (container,) = containers_of(deployment, init=False)
    env = environment(deployment, container)
    for variable in variables_a_deployment_must_set(service):
        assert any(n in env for n in variable.names), f"{service} must set one of {variable.names}"
    for names in ONE_OF_MUST_BE_SET.get(service, []):
        assert any(env.get(n) for n in names), f"{service} must set one of {names}"
    job = one("Job", f"{service}-migrate")
    for job_container in containers_of(job):  # provision, then migrate
        env = environment(job, job_container)
        for variable in privileged_variables(service):
            assert any(n in env for n in variable.names), f"{job_container['name']}: {variable.names}"
        assert f"{service.upper()}_DATABASE_URL" in env and f"{service.upper()}_AMQP_URL" in env


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_pod_holds_no_administrators_or_owners_credentials(service):
    deployment = one("Deployment", service)
    privileged = {name for variable in privileged_variables(service) for name in variable.names}
    for container in containers_of(deployment):
        env = environment(deployment, container)
        assert not privileged & set(env), container["name"]
        urls = [urlsplit(v) for k, v in env.items() if k.endswith("_URL") and "://" in v]
        assert not [u for u in urls if (u.username or "").endswith("_owner")]
    (main,) = containers_of(deployment, init=False)
    env = environment(deployment, main)
    assert urlsplit(env[f"{service.upper()}_DATABASE_URL"]).username == f"clinic_{service}"
    assert urlsplit(env[f"{service.upper()}_AMQP_URL"]).username == f"clinic_{service}"


def machine_sized_settings(service: str) -> list[str]:
    """Variables whose default is computed from the machine (its cores), not the pod."""
    settings = importlib.import_module(f"{service}.config").Settings
    names = []
    for field in settings.model_fields.values():
        if field.default_factory is not None and isinstance(field.validation_alias, str):
            names.append(field.validation_alias)
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_settings_sized_from_the_machine_are_set_for_the_pod(service):
    # os.cpu_count() in a pod is the node's: 64 cores would mean 64 concurrent password hashes
    # (19 MiB each) in identity's 512 MiB, and pools of 20 connections per replica.
    assert "DB_POOL_SIZE" in machine_sized_settings(service)
    deployment = one("Deployment", service)
    (container,) = containers_of(deployment, init=False)
    env = environment(deployment, container)
    for name in machine_sized_settings(service):
        assert name in env, f"{service}: {name} defaults to the node's size; set it for the pod"


def test_identity_hashes_within_its_memory_limit():
    deployment = one("Deployment", "identity")
    (container,) = containers_of(deployment, init=False)
    env = environment(deployment, container)
    from identity.config import Settings

    fields = Settings.model_fields
    memory_kib = int(env.get("PASSWORD_HASH_MEMORY_COST", fields["password_hash_memory_cost"].default))
    concurrency = int(env["PASSWORD_HASH_CONCURRENCY"])
    limit_mib = int(container["resources"]["limits"]["memory"].removesuffix("Mi"))
    # The hashes in flight take at most a quarter of the limit: the app itself needs the rest.
    assert concurrency * memory_kib / 1024 <= limit_mib / 4


def test_the_docs_app_runs_its_image_and_asks_every_service_for_its_document():
    deployment = one("Deployment", DOCS)
    (container,) = containers_of(deployment)
    assert container["image"].split(":")[0].endswith(f"clinic/{DOCS}")
    assert "command" not in container and "args" not in container, "the image's CMD is the Procfile line"
    variable, port = procfile_port(DOCS)
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    env = environment(deployment, container)
    assert env[variable] == str(port)
    for service in SERVICES:
        url = urlsplit(env[f"{service.upper()}_URL"])
        assert (url.hostname, url.port) == (service, procfile_port(service)[1])
    (service_port,) = one("Service", DOCS)["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (port, "http")
    (uid,) = re.findall(r"^USER (\d+)", dockerfile(DOCS), re.M)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == int(uid)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_every_url_names_a_kubernetes_service_at_its_port():
    ports = {s: procfile_port(s)[1] for s in SERVICES}
    for deployment in find("Deployment"):
        for container in containers_of(deployment):
            for key, value in environment(deployment, container).items():
                if key.endswith("_URL") and value.startswith("http"):
                    url = urlsplit(value)
                    assert (url.hostname, url.port) in ports.items(), f"{key}={value}"


def test_identity_reads_the_shared_signing_key_from_a_secret():
    deployment = one("Deployment", "identity")
    (container,) = containers_of(deployment, init=False)
    key_file = Path(environment(deployment, container)["JWT_PRIVATE_KEY_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == key_file.parent]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    secret = one("Secret", volume["secret"]["secretName"])
    assert key_file.name in secret["stringData"]


def test_booking_reads_the_calendar_feed_key_from_a_secret_file():
    deployment = one("Deployment", "booking")
    (container,) = containers_of(deployment, init=False)
    key_file = Path(environment(deployment, container)["CALENDAR_FEED_KEY_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == key_file.parent]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    secret = one("Secret", volume["secret"]["secretName"])
    assert key_file.name in secret["stringData"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_migration_job_provisions_then_migrates_with_the_deployment_image(service):
    job = one("Job", f"{service}-migrate")
    (provision,) = job["spec"]["template"]["spec"]["initContainers"]
    (container,) = containers_of(job, init=False)
    (deployed,) = containers_of(one("Deployment", service), init=False)
    assert provision["command"] == [service, "provision"] and provision["image"] == deployed["image"]
    assert container["command"] == [service, "migrate"] and container["image"] == deployed["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


@pytest.mark.parametrize("service", SERVICES)
def test_the_pods_wait_for_the_migrations_of_their_image(service):
    deployment = one("Deployment", service)
    (init,) = [
        c
        for c in deployment["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "wait-for-migrations"
    ]
    (container,) = containers_of(deployment, init=False)
    assert init["image"] == container["image"]
    script, argument = init["command"][1:]
    assert init["command"][0] == "python" and argument == service
    (mount,) = [m for m in init["volumeMounts"] if m["mountPath"] == str(Path(script).parent)]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert (
        Path(script).name
        in one("ConfigMap", re.sub(r"-[a-z0-9]{10}$", "", volume["configMap"]["name"]))["data"]
    )


def consuming_services() -> list[str]:
    """The services whose `<name> migrate` declares queues (their events module names what they consume)."""
    return [s for s in SERVICES if "\nCONSUMED" in (ROOT / f"{s}-service/src/{s}/events.py").read_text()]


def test_identity_waits_for_every_consumer_queue_before_it_publishes():
    # identity publishes at start-up; in Kubernetes nothing else orders it after the other
    # services' migration Jobs, which declare their queues.
    deployment = one("Deployment", "identity")
    inits = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["initContainers"]}
    init = inits["wait-for-queues"]
    (container,) = containers_of(deployment, init=False)
    assert init["image"] == container["image"]
    assert init["command"][:2] == ["python", "/opt/clinic/scripts/wait_for_queues.py"]
    assert sorted(init["command"][2:]) == sorted(s for s in consuming_services() if s != "identity")
    sources = {ref.get("secretRef", ref.get("configMapRef"))["name"] for ref in init["envFrom"]}
    # identity's own broker user (IDENTITY_AMQP_URL): passive declarations need no permission.
    assert {"identity-broker", "clinic-config"} <= sources
    (mount,) = [m for m in init["volumeMounts"] if m["mountPath"] == "/opt/clinic/scripts"]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    scripts = one("ConfigMap", re.sub(r"-[a-z0-9]{10}$", "", volume["configMap"]["name"]))["data"]
    assert "wait_for_queues.py" in scripts


def wait_script():
    spec = importlib.util.spec_from_file_location("wait_for_migrations", K8S_DIR / "wait_for_migrations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_deployment_waits_for_its_own_migrations_with_a_name_the_script_takes():
    # notification's pods once never started: the script refused its name (Init:CrashLoopBackOff).
    waiting = {}
    for deployment in find("Deployment"):
        for init in deployment["spec"]["template"]["spec"].get("initContainers", []):
            if init.get("command", [])[:2] == ["python", "/opt/clinic/scripts/wait_for_migrations.py"]:
                waiting[deployment["metadata"]["name"]] = init["command"][2:]
    assert waiting == {service: [service] for service in SERVICES}
    assert set(wait_script().SERVICES) == set(SERVICES)


def test_the_wait_script_knows_a_migrated_database_from_one_still_waiting_for_its_job():
    module = wait_script()
    from alembic.script import ScriptDirectory

    from chassis.migrations import alembic_config

    for service in SERVICES:
        cli = importlib.import_module(f"{service}.cli")
        assert importlib.import_module(f"{service}.config").Settings.model_fields["database_url"]
        script = ScriptDirectory.from_config(alembic_config(cli.ALEMBIC_INI, "postgresql://unused/unused"))
        heads = set(script.get_heads())
        assert module.is_migrated(script, heads)
        assert not module.is_migrated(script, set())
        assert module.is_migrated(script, {"f00dfeedbeef"}), "a newer image's revision counts as migrated"
        older = {r.revision for r in script.walk_revisions()} - heads
        for revision in older:
            assert not module.is_migrated(script, {revision})


# ------------------------------------------------------------------ the gateway


@pytest.fixture(scope="module")
def file_gateway():
    """The routers and middlewares Traefik makes of gateway/dynamic, started by gateway/run.sh."""
    traefik = require_tool("traefik")
    admin = free_port()
    env = {
        "PATH": f"{Path(traefik).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_INTERNAL_PORT": str(free_port()),
        "GATEWAY_LOG_LEVEL": "ERROR",
        "TRAEFIK_BIN": traefik,
        # Backends nobody listens on: the health checks of this instance stay local and quiet.
        **{f"{s.upper()}_URL": "http://127.0.0.1:9" for s in (*SERVICES, DOCS)},
    }
    words = procfile()["gateway"].words
    process = subprocess.Popen(
        [*words, "--api=true", "--api.insecure=true"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{admin}/api/http/routers?per_page=500"
                ) as answer:
                    routers = [r for r in json.load(answer) if r["provider"] == "file"]
                if routers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"Traefik did not load gateway/dynamic: {process.stderr.read1().decode()}")
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/http/middlewares?per_page=500") as answer:
            middlewares = {
                m["name"].removesuffix("@file"): m for m in json.load(answer) if m["provider"] == "file"
            }
        yield routers, middlewares
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ingress_routes() -> dict[tuple[str, ...], list[dict]]:
    """Each IngressRoute's routes, by its entry points."""
    return {tuple(r["spec"]["entryPoints"]): r["spec"]["routes"] for r in find("IngressRoute")}


def backend_of(file_service: str) -> str:
    """The Kubernetes Service of a file service: ``booking-failover`` (the booking replicas, else
    the 503 fallback) and ``identity-verify`` (identity's replicas for token checks) are the
    Service's name in the cluster, which balances over its ready pods."""
    return file_service.removesuffix("@file").removesuffix("-failover").removesuffix("-verify")


def test_the_ingress_routes_have_the_routers_of_the_gateway_configuration(file_gateway):
    routers, _ = file_gateway
    ports = {s: procfile_port(s)[1] for s in (*SERVICES, DOCS)}
    routes = ingress_routes()
    assert set(routes) == {tuple(r["entryPoints"]) for r in routers}
    for entry_points, entries in routes.items():
        by_rule = {entry["match"]: entry for entry in entries}
        assert len(by_rule) == len(entries), "two routes with one rule"
        file_routers = [r for r in routers if tuple(r["entryPoints"]) == entry_points]
        assert set(by_rule) == {router["rule"] for router in file_routers}
        for router in file_routers:
            entry = by_rule[router["rule"]]
            assert entry.get("priority") == router.get("priority"), router["name"]
            assert [m["name"] for m in entry.get("middlewares", [])] == [
                m.removesuffix("@file") for m in router.get("middlewares", [])
            ], router["name"]
            (backend,) = entry["services"]
            service = backend_of(router["service"])
            assert (backend["name"], backend["port"]) == (service, ports[service])


def _seconds(duration: str | int) -> float:
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", duration))


def test_the_middlewares_do_what_the_gateway_configuration_does(file_gateway):
    _, middlewares = file_gateway
    ports = {s: procfile_port(s)[1] for s in (*SERVICES, DOCS)}
    k8s = {m["metadata"]["name"]: m["spec"] for m in find("Middleware")}
    assert set(k8s) == set(middlewares)
    for name, rendered_middleware in middlewares.items():
        kind = next(
            k for k in rendered_middleware if k not in {"status", "usedBy", "name", "provider", "type"}
        )
        config, mirror = dict(rendered_middleware[kind]), dict(k8s[name][kind])
        if kind == "forwardAuth":
            # Both call the gateway's own internal entry point, which routes to identity; in the
            # cluster on the port README.md asks the platform team for.
            expected = urlsplit(config.pop("address"))
            actual = urlsplit(mirror.pop("address"))
            assert (actual.hostname, actual.path) == (expected.hostname, expected.path)
            assert (actual.hostname, actual.port) == ("127.0.0.1", 8081)
            if config.get("maxBodySize") == -1:  # Traefik's default, shown by its API
                config.pop("maxBodySize")
        if kind == "retry" and config.get("maxRequestBodyBytes") == 2097152:  # Traefik's default
            config.pop("maxRequestBodyBytes")
        if kind == "rateLimit":
            config["period"], mirror["period"] = _seconds(config["period"]), _seconds(mirror["period"])
        if kind == "errors":
            # A Service of the cluster (name and port) where the file names the load balancer.
            service = mirror.pop("service")
            assert service == {"name": config.pop("service").removesuffix("@file"), "port": ports[DOCS]}
        assert mirror == config, name


def test_the_gateway_entry_point_options_are_documented_for_the_cluster_traefik():
    readme = (K8S_DIR / "README.md").read_text()
    run_sh = (GATEWAY_DIR / "run.sh").read_text()
    options = re.findall(r"--(entrypoints\.(?:web\.http|internal)\.[a-z.]+)=", run_sh)
    assert "entrypoints.internal.address" in options
    for option in sorted(set(options)):
        assert option in readme, f"README.md does not tell the platform team to set {option}"


def test_the_kubernetes_readme_covers_the_prerequisites():
    readme = (K8S_DIR / "README.md").read_text()
    for topic in (
        "kubectl apply -k deploy/k8s",
        "CloudNativePG",
        "RabbitMQ Cluster Operator",
        "IngressRoute",
    ):
        assert topic in readme


# ------------------------------------------------------------------ docs match the health code

HEALTH_DOCS = ["docs/deploy.md", "deploy/k8s/README.md", "docs/local-stack.md", "docs/CONVENTIONS.md"]


def paragraphs_about_readiness(path: str) -> list[str]:
    text = (ROOT / path).read_text()
    blocks = re.split(r"\n\s*\n|\n(?=\s*[-|] )", text)
    return [" ".join(block.split()) for block in blocks if "/health/ready" in block]


@pytest.mark.parametrize("path", HEALTH_DOCS)
def test_the_docs_say_a_broker_outage_leaves_services_ready(path):
    # chassis.health: 503 only without the database; the broker is informational ("degraded").
    from chassis.health import health_router

    assert "broker" in inspect.signature(health_router).parameters["informational"].default
    for paragraph in paragraphs_about_readiness(path):
        if re.search(r"broker|RabbitMQ", paragraph):
            assert "unready" not in paragraph and "out of rotation (503)" not in paragraph, paragraph
            assert re.search(r"degraded|broker reported|reports the broker", paragraph), paragraph
