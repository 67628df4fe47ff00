"""The NetworkPolicies of deploy/k8s, evaluated as a cluster would: who may open which port to whom.

Rather than checking the YAML's shape, these tests evaluate the rendered policies with the
Kubernetes semantics (a pod selected by no policy of a direction is open in it; one selected
by any is closed but to what some policy allows; a connection needs the source's egress and
the destination's ingress) and compare the whole matrix with the intended one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from .conftest import SERVICES
from .test_k8s import find

NAMESPACE = "clinic"
PORTS = {
    "identity": 8001,
    "doctor": 8002,
    "scheduling": 8003,
    "booking": 8004,
    "notification": 8006,
    "docs": 8005,
}


@dataclass(frozen=True)
class Pod:
    name: str
    labels: dict = field(hash=False)
    namespace: str = NAMESPACE
    namespace_labels: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Address:
    """Something outside the cluster (a database, the broker), reached by IP."""

    name: str
    ip: str


def api(service: str) -> Pod:
    return Pod(service, {"app.kubernetes.io/name": service, "app.kubernetes.io/component": "api"})


def migration(service: str) -> Pod:
    return Pod(
        f"{service}-migrate", {"app.kubernetes.io/name": service, "app.kubernetes.io/component": "migration"}
    )


TRAEFIK = Pod(
    "traefik", {"app.kubernetes.io/name": "traefik"}, "traefik", {"kubernetes.io/metadata.name": "traefik"}
)
KUBE_DNS = Pod(
    "kube-dns", {"k8s-app": "kube-dns"}, "kube-system", {"kubernetes.io/metadata.name": "kube-system"}
)
STRANGER = Pod("stranger", {"app": "something-else"}, "other", {"kubernetes.io/metadata.name": "other"})
PROMETHEUS = Pod(
    "prometheus",
    {"app.kubernetes.io/name": "prometheus"},
    "monitoring",
    {"kubernetes.io/metadata.name": "monitoring"},
)
METRICS_PORTS = {"identity": 9101, "doctor": 9102, "scheduling": 9103, "booking": 9104, "notification": 9106}
CLINIC_PODS = [*(api(s) for s in (*SERVICES, "docs")), *(migration(s) for s in SERVICES)]


def policies() -> list[dict]:
    return find("NetworkPolicy")


def _matches_labels(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, f"the evaluator does not know {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _selects(policy: dict, pod: Pod) -> bool:
    return pod.namespace == policy["metadata"]["namespace"] and _matches_labels(
        policy["spec"]["podSelector"], pod.labels
    )


def _peer_matches(peer: dict, target: Pod | Address, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if not isinstance(target, Address):
            return False
        ip = ipaddress.ip_address(target.ip)
        block = peer["ipBlock"]
        # As Kubernetes reads it: the CIDR, less the ranges under "except".
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(excepted) for excepted in block.get("except", [])
        )
    if isinstance(target, Address):
        return False
    if "namespaceSelector" in peer:
        if not _matches_labels(peer["namespaceSelector"], target.namespace_labels):
            return False
    elif target.namespace != policy_namespace:
        return False
    return _matches_labels(peer.get("podSelector", {}), target.labels)


def _port_matches(rule: dict, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    return ports is None or any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


def _allowed(direction: str, subject: Pod, other: Pod | Address, port: int, protocol: str) -> bool:
    """Whether ``subject``'s policies of ``direction`` let it talk with ``other`` on ``port``."""
    if subject.namespace != NAMESPACE:
        return True  # outside the base: not its policies' business
    kind, peers_key = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    selecting = [p for p in policies() if _selects(p, subject) and kind in p["spec"].get("policyTypes", [])]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(direction, []):
            peers = rule.get(peers_key)
            if _port_matches(rule, port, protocol) and (
                peers is None
                or any(_peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in peers)
            ):
                return True
    return False


def can_connect(source: Pod, target: Pod | Address, port: int, protocol: str = "TCP") -> bool:
    egress = _allowed("egress", source, target, port, protocol)
    ingress = isinstance(target, Address) or _allowed("ingress", target, source, port, protocol)
    return egress and ingress


def database(service: str) -> Address:
    """The database address the base's placeholder names for ``service`` (its egress ipBlock)."""
    (policy,) = [p for p in policies() if p["metadata"]["name"] == service]
    for rule in policy["spec"]["egress"]:
        if any(p.get("port") == 5432 for p in rule.get("ports", [])):
            return Address(f"{service}-db", rule["to"][0]["ipBlock"]["cidr"].split("/")[0])
    raise AssertionError(f"{service} has no egress to a database")


def broker() -> Address:
    (policy,) = [p for p in policies() if p["metadata"]["name"] == "identity"]
    for rule in policy["spec"]["egress"]:
        if any(p.get("port") == 5672 for p in rule.get("ports", [])):
            return Address("rabbitmq", rule["to"][0]["ipBlock"]["cidr"].split("/")[0])
    raise AssertionError("identity has no egress to the broker")


# Every (caller, callee) pair that must work; every other pair between these pods must not.
INTENDED_CALLS = (
    {("traefik", s) for s in PORTS}
    | {("docs", s) for s in SERVICES}
    | {(s, "identity") for s in ("doctor", "scheduling", "booking", "notification")}
    | {("booking", "scheduling"), ("scheduling", "booking")}
)


def test_every_pod_of_the_namespace_is_denied_everything_by_default():
    (deny,) = [p for p in policies() if p["metadata"]["name"] == "default-deny"]
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


def test_the_services_reach_each_other_exactly_as_the_architecture_says():
    callers = [TRAEFIK, STRANGER, *CLINIC_PODS]
    callees = [api(s) for s in PORTS]
    allowed = {
        (source.name, target.name)
        for source in callers
        for target in callees
        if source.name != target.name and can_connect(source, target, PORTS[target.name])
    }
    assert allowed == INTENDED_CALLS


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_answers_only_on_its_own_port(service):
    assert not can_connect(TRAEFIK, api(service), 9090)
    assert not can_connect(api("docs"), api(service), PORTS[service] + 100)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_and_its_migration_job_reach_their_own_database_and_no_other(service):
    for pod in (api(service), migration(service)):
        for other in SERVICES:
            assert can_connect(pod, database(other), 5432) == (other == service), (pod.name, other)


def test_only_the_services_and_their_jobs_reach_the_broker():
    reach = {pod.name for pod in CLINIC_PODS if can_connect(pod, broker(), 5672)}
    assert reach == {*SERVICES, *(f"{s}-migrate" for s in SERVICES)}
    # The management API (user provisioning) is the jobs' alone.
    reach = {pod.name for pod in CLINIC_PODS if can_connect(pod, broker(), 15672)}
    assert reach == {f"{s}-migrate" for s in SERVICES}


def test_the_docs_app_reaches_no_database():
    assert not any(can_connect(api("docs"), database(s), 5432) for s in SERVICES)


@pytest.mark.parametrize("pod", CLINIC_PODS, ids=lambda pod: pod.name)
def test_every_pod_resolves_names(pod):
    assert can_connect(pod, KUBE_DNS, 53, "UDP") and can_connect(pod, KUBE_DNS, 53, "TCP")


def test_nothing_else_leaves_the_namespace():
    internet = Address("internet", "203.0.113.7")
    leaving = {pod.name for pod in CLINIC_PODS if can_connect(pod, internet, 443)}
    # Webhook receivers and the mail server are outside: notification alone goes there.
    assert leaving == {"notification"}


def test_notification_reaches_receivers_and_mail_servers_outside_but_no_private_range():
    notification = api("notification")
    for port in (80, 443, 25, 465, 587):
        assert can_connect(notification, Address("receiver", "203.0.113.7"), port)
    for private in ("10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "127.0.0.1"):
        assert not can_connect(notification, Address("inside", private), 443), private
    assert not can_connect(notification, Address("receiver", "203.0.113.7"), 5432)


def test_the_database_and_broker_addresses_are_placeholders_that_never_work_by_accident():
    test_net = ipaddress.ip_network("192.0.2.0/24")
    for address in [*(database(s) for s in SERVICES), broker()]:
        assert ipaddress.ip_address(address.ip) in test_net


@pytest.mark.parametrize("service", SERVICES)
def test_prometheus_scrapes_each_service_on_its_metrics_port_and_nobody_else_does(service):
    metrics = METRICS_PORTS[service]
    assert can_connect(PROMETHEUS, api(service), metrics)
    assert not can_connect(PROMETHEUS, api(service), PORTS[service])  # not the API
    for other in (TRAEFIK, STRANGER, api("docs")):
        assert not can_connect(other, api(service), metrics), other.name
