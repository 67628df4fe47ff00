"""deploy/observability/: the scrape configurations, alert rules and dashboards, checked against
the code (the metrics it exports, the ports it serves them on) and by Prometheus's own promtool."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from ..e2e.prometheus import run_promtool
from .conftest import ROOT, SERVICES, compose, procfile

HERE = ROOT / "deploy" / "observability"
DASHBOARDS = sorted((HERE / "grafana" / "dashboards").glob("*.json"))
K8S = ROOT / "deploy" / "k8s"

# Metrics that come from elsewhere: Prometheus itself, and the gateway (Traefik).
FOREIGN = re.compile(r"^(up|traefik_[a-z_]+)$")
# HTTP metrics of every service (chassis.metrics.HttpMetrics).
HTTP_METRICS = {"http_requests_total", "http_request_duration_seconds"}


def metrics_port(service: str) -> int:
    """The default of ``<SERVICE>_METRICS_PORT`` on the service's Procfile line."""
    return int(procfile()[service].variables[f"{service.upper()}_METRICS_PORT"])


def exported_metric_names() -> set[str]:
    """Every metric family the chassis and the services define (their modules imported)."""
    for module in (
        "chassis.messaging.metrics",
        *(f"{s}.adapters.metrics" for s in ("identity", "scheduling", "booking", "notification")),
    ):
        importlib.import_module(module)
    names = set(HTTP_METRICS)
    for family in REGISTRY.collect():
        names |= {family.name, f"{family.name}_total"} if family.type == "counter" else {family.name}
        names |= {sample.name for sample in family.samples}
    # Collected at scrape time (chassis.messaging.metrics.OutboxBacklog), from the database.
    names |= {"clinic_outbox_unpublished_events", "clinic_outbox_oldest_unpublished_age_seconds"}
    # notification.adapters.metrics.NotificationBacklog, likewise.
    names |= {"clinic_notification_pending", "clinic_notification_oldest_pending_age_seconds"}
    return names


def metric_names_in(expression: str) -> set[str]:
    """The metric names of a PromQL expression (no label of this project starts like one)."""
    return set(re.findall(r"\b(clinic_\w+|http_\w+|traefik_\w+|up)\b", expression))


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard panel."""
    found = []
    for group in yaml.safe_load((HERE / "alerts.yml").read_text())["groups"]:
        found += [(f"alert {rule['alert']}", rule["expr"]) for rule in group["rules"]]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            found += [(f"{path.name}: {panel['title']}", target["expr"]) for target in panel["targets"]]
    return found


def test_the_alert_rules_are_valid_and_pass_their_unit_tests():
    checked = run_promtool("check", "rules", "alerts.yml", cwd=HERE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run_promtool("test", "rules", "alerts.test.yml", cwd=HERE)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test():
    alerts = {
        rule["alert"]
        for g in yaml.safe_load((HERE / "alerts.yml").read_text())["groups"]
        for rule in g["rules"]
    }
    tests = yaml.safe_load((HERE / "alerts.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])}
    assert alerts == tested
    wanted = {"ClinicOutboxStuck", "ClinicDeadLetters", "ClinicConsumerLagHigh", "ClinicHigh5xxRate"}
    wanted |= {"ClinicHoldSweeperStuck", "ClinicWebhookDeliveriesFailing", "ClinicMailBacklogGrowing"}
    assert wanted <= alerts


def test_the_compose_scrape_configuration_is_valid_for_prometheus(tmp_path):
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    # Mounted at /etc/prometheus in compose: checked from here.
    config["rule_files"] = [str(HERE / Path(f).name) for f in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def relabel(labels: dict[str, str], rules: list[dict]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep and replace, the actions the Kubernetes job uses); None: dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if not match:
                return None
        elif action == "replace":
            if match:
                replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"relabel action {action} is not simulated here")
    return labels


def test_the_kubernetes_job_scrapes_each_annotated_pod_at_its_metrics_port_as_its_app():
    # Debian's promtool has no Kubernetes discovery to check this file with: the relabelling is
    # simulated on the labels Kubernetes discovery gives a pod of deploy/k8s.
    (job,) = yaml.safe_load((HERE / "prometheus-kubernetes.yml").read_text())["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["clinic"]}}]
    for service in SERVICES:
        deployment = next(
            doc
            for doc in yaml.safe_load_all((K8S / f"{service}.yaml").read_text())
            if doc and doc["kind"] == "Deployment"
        )
        template = deployment["spec"]["template"]["metadata"]
        pod = {
            "__address__": "10.1.2.3:8000",
            "__metrics_path__": "/metrics",
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_name": f"{service}-abc",
            "__meta_kubernetes_namespace": "clinic",
        }
        for key, value in template["annotations"].items():
            pod["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        for key, value in template["labels"].items():
            pod["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
        target = relabel(pod, job["relabel_configs"])
        assert target is not None, f"{service}'s pods are not scraped"
        assert target["__address__"] == f"10.1.2.3:{metrics_port(service)}"
        assert (target["job"], target["__metrics_path__"]) == (service, "/metrics")
    unannotated = {"__address__": "10.1.2.4:5432", "__meta_kubernetes_pod_phase": "Running"}
    assert relabel(unannotated, job["relabel_configs"]) is None


def test_every_metric_the_alerts_and_dashboards_name_is_exported():
    exported = exported_metric_names()
    for where, expression in expressions():
        for name in metric_names_in(expression):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert FOREIGN.match(name) or name in exported or base in exported, (
                f"{where}: {name} is not exported"
            )


def test_the_compose_scrape_jobs_are_the_services_at_their_metrics_ports():
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", *SERVICES}
    assert jobs["gateway"]["static_configs"] == [{"targets": ["gateway:8080"]}]
    for service in SERVICES:
        (sd,) = jobs[service]["dns_sd_configs"]
        assert sd["names"] == [service] and sd["type"] == "A", "every replica, by DNS"
        assert sd["port"] == metrics_port(service)


def test_the_observability_profile_runs_prometheus_and_grafana_beside_the_stack():
    services = compose()["services"]
    profiled = {name for name, spec in services.items() if spec.get("profiles")}
    assert profiled == {"prometheus", "grafana"}
    assert all(services[name]["profiles"] == ["observability"] for name in profiled)
    prometheus, grafana = services["prometheus"], services["grafana"]
    # Prometheus reaches the gateway and every service (each on its <name>-api network).
    networks = set(prometheus["networks"])
    for target in ("gateway", *SERVICES):
        assert networks & set(services[target]["networks"]), f"prometheus cannot reach {target}"
    assert not networks & {"broker", *(f"{s}-db" for s in SERVICES)}
    assert set(grafana["networks"]) == {"monitoring"} and "monitoring" in networks
    # Published on loopback only; its configuration and rules are the files checked above.
    for spec in (prometheus, grafana):
        assert all(str(port).startswith("127.0.0.1:") for port in spec["ports"])
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"] if ":" in v}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/observability/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/observability/alerts.yml"
    assert prometheus["build"]["context"].rstrip("/").endswith("deploy/observability")
    assert "prometheus" in (HERE / prometheus["build"]["dockerfile"]).read_text()


def test_no_service_publishes_or_routes_its_metrics_port():
    services = compose()["services"]
    for service in SERVICES:
        assert not services[service].get("ports")
    for path in (ROOT / "gateway" / "dynamic").glob("*.yml"):
        text = path.read_text()
        for service in SERVICES:
            assert str(metrics_port(service)) not in text, f"{path.name} routes {service}'s metrics port"


@pytest.mark.parametrize("service", SERVICES)
def test_the_kubernetes_pods_ask_to_be_scraped_at_their_metrics_port(service):
    deployment = next(
        doc
        for doc in yaml.safe_load_all((K8S / f"{service}.yaml").read_text())
        if doc and doc["kind"] == "Deployment"
    )
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(metrics_port(service))
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_dashboards_use_the_provisioned_data_source():
    provisioning = yaml.safe_load((HERE / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = provisioning["datasources"]
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], f"{path.name}: {panel['title']}"
    assert len(uids) == len(DASHBOARDS) == 3
