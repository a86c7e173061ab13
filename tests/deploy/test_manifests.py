"""deploy/: the image, Docker Compose and the Kubernetes manifests, checked without a cluster.

The kustomizations are rendered here by a small renderer of the few kustomize features they
use (resources, namespace, images, JSON 6902 patches with a kind/name target) — anything
else in a kustomization fails the test rather than rendering wrong — and compared with
`kubectl kustomize` where that is installed. Every rendered document is validated with
kubernetes-validate (strict: unknown fields fail); KEDA's ScaledObject has no schema there,
so its required fields are checked here.
"""

from __future__ import annotations

import copy
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ai_pipeline.bootstrap import AGENTS
from ai_pipeline.settings import DEFAULT_PARTITIONS, Settings
from tests.conftest import REPO, require_tool

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACE = "ai-pipeline"
KUBERNETES_VERSION = "1.37.0"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
SETTINGS_VARIABLES = {f"AI_PIPELINE_{name.upper()}" for name in Settings.model_fields}
# Deployment name → (the `ai-pipeline agent` argument, the bootstrap AGENTS key).
AGENT_DEPLOYMENTS = {
    "triage-agent": ("triage", "triage_agent"),
    "ticket-creation-agent": ("ticket-creation", "ticket_creation_agent"),
    "github-api-agent": ("github-api", "github_api_agent"),
}
APP_SERVICES = ("api", *AGENT_DEPLOYMENTS)


# --- a renderer of the kustomize features deploy/k8s uses ---------------------------------

SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}


def render(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KEYS
    assert not unsupported, f"{directory}: the test renderer does not know {unsupported}"
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs.extend(render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"target", "patch"}, f"only inline JSON 6902 patches: {patch}"
        target = patch["target"]
        assert set(target) <= {"kind", "name"}, target
        selected = [
            d
            for d in docs
            if d["kind"] == target["kind"]
            and target.get("name", d["metadata"]["name"]) == d["metadata"]["name"]
        ]
        assert selected, f"{directory}: patch target {target} selects nothing"
        for doc in selected:
            for operation in yaml.safe_load(patch["patch"]):
                apply_operation(doc, operation)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for container in containers(docs):
            if image_name(container["image"]) == image["name"]:
                name = image.get("newName", image["name"])
                tag = image.get("newTag", container["image"].partition(":")[2] or None)
                container["image"] = f"{name}:{tag}" if tag else name
    return docs


def image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def containers(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])


def apply_operation(doc: dict[str, Any], operation: dict[str, Any]) -> None:
    op, path = operation["op"], operation["path"]
    assert op in {"add", "replace", "remove"}, f"unsupported JSON patch op {op}"
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "remove":
            del node[index]
        elif op == "add":
            node.insert(index, operation["value"])
        else:
            node[index] = operation["value"]
        return
    if op in {"replace", "remove"}:
        assert last in node, f"{path}: nothing to {op} in {doc['kind']}/{doc['metadata']['name']}"
    if op == "remove":
        del node[last]
    else:
        node[last] = copy.deepcopy(operation["value"])


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture
def docs(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> list[dict[str, Any]]:
    return rendered[overlay]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


# --- Kubernetes ----------------------------------------------------------------------------


KUSTOMIZE_VERSION = "v5.7.1"  # built by scripts/test-services.sh


def kustomize() -> str:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    built = cache / "ai-pipeline" / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"
    return require_tool("kustomize", built)


@pytest.mark.parametrize("directory", ["base", "overlays/dev", "overlays/prod"])
def test_renderer_agrees_with_kustomize(directory: str) -> None:
    command = [kustomize(), "build"]
    result = subprocess.run(
        [*command, str(K8S / directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    theirs = sorted((d for d in yaml.safe_load_all(result.stdout) if d), key=key)
    ours = sorted(render(K8S / directory), key=key)
    assert [key(d) for d in ours] == [key(d) for d in theirs]
    assert ours == theirs


def test_every_document_is_valid_kubernetes(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] == "ScaledObject":
            continue  # a KEDA CRD, no schema in kubernetes-validate: checked below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_defect_fails_validation(docs: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(by_kind(docs, "Deployment")["ai-pipeline"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_everything_lives_in_the_ai_pipeline_namespace(docs: list[dict[str, Any]]) -> None:
    assert by_kind(docs, "Namespace").keys() == {NAMESPACE}
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == NAMESPACE, key(doc)
    assert len({key(d) for d in docs}) == len(docs), "a resource is declared twice"


def test_the_runbook_deployments_run_the_right_roles(docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(docs, "Deployment")
    # No coordinator Deployment: the coordinator runs inside the API role.
    assert deployments.keys() == {"ai-pipeline", *AGENT_DEPLOYMENTS}
    (api,) = deployments["ai-pipeline"]["spec"]["template"]["spec"]["containers"]
    assert api["command"][:2] == ["ai-pipeline", "serve"]
    assert api["command"][api["command"].index("--role") + 1] == "api"
    for name, (cli, agent) in AGENT_DEPLOYMENTS.items():
        assert agent in AGENTS
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["command"][:3] == ["ai-pipeline", "agent", cli]
        assert container["command"][container["command"].index("--port") + 1] == "8081"


def test_every_deployment_is_probed_limited_and_unprivileged(docs: list[dict[str, Any]]) -> None:
    for name, deployment in by_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        for container in pod["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            expected = ("/api/v1/health", 8000) if name == "ai-pipeline" else ("/health", 8081)
            assert int(annotations["prometheus.io/port"]) == expected[1], name
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = container[probe]["httpGet"]
                assert (get["path"], ports[get["port"]]) == expected, (name, probe)
            resources = container["resources"]
            assert resources["requests"]["cpu"] == "500m", name
            assert resources["limits"]["cpu"] == "1000m", name
            assert resources["requests"]["memory"] and resources["limits"]["memory"], name
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            # A read-only root needs its writable places mounted.
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/app/data"} <= mounts, name


def test_configuration_is_known_settings_and_secrets_come_from_the_secret(
    docs: list[dict[str, Any]],
) -> None:
    config = by_kind(docs, "ConfigMap")["ai-pipeline-config"]["data"]
    assert set(config) <= SETTINGS_VARIABLES, set(config) - SETTINGS_VARIABLES
    assert not {k for k in config if k.endswith(("_TOKEN", "_API_KEY", "_PRIVATE_KEY"))}
    values = {k.removeprefix("AI_PIPELINE_").lower(): v for k, v in config.items()}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.bus.startswith("kafka://") and settings.state.startswith("redis://")
    # An emptied Redis (flush, eviction, failover) must close the API, never open it.
    assert settings.auth == "required"
    for name, deployment in by_kind(docs, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "ai-pipeline-config"}}], name
        secrets = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert secrets.keys() == {
            "AI_PIPELINE_GITHUB_TOKEN",
            "AI_PIPELINE_GITHUB_APP_PRIVATE_KEY",
            "AI_PIPELINE_LLM_API_KEY",
        }, name
        assert {s["name"] for s in secrets.values()} == {"ai-pipeline-secrets"}
        assert all("value" not in e for e in container["env"]), f"{name}: a literal env value"


def test_no_secret_values_are_shipped(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in (*rendered.values(), render(K8S / "base")):
        assert not by_kind(docs, "Secret"), "secrets are created in the cluster, not shipped"
    listed = [
        entry
        for path in K8S.rglob("kustomization.yaml")
        for entry in yaml.safe_load(path.read_text()).get("resources", [])
    ]
    assert listed and not [entry for entry in listed if "secret" in entry.lower()]
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert example["metadata"]["name"] == "ai-pipeline-secrets"
    assert "data" not in example
    assert set(example["stringData"].values()) == {"REPLACE_ME"}


def test_every_agent_scales_on_its_consumer_group_lag(docs: list[dict[str, Any]]) -> None:
    scaled = by_kind(docs, "ScaledObject")
    assert scaled.keys() == set(AGENT_DEPLOYMENTS)
    broker = by_kind(docs, "ConfigMap")["ai-pipeline-config"]["data"]["AI_PIPELINE_BUS"]
    deployments = by_kind(docs, "Deployment")
    for name, (_, agent) in AGENT_DEPLOYMENTS.items():
        obj = scaled[name]
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["metadata"]["namespace"] == NAMESPACE
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == name and name in deployments
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        group, topic, _ = AGENTS[agent]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        assert metadata["consumerGroup"] == group, name
        assert metadata["topic"] == topic.value, name
        assert metadata["bootstrapServers"] == broker.removeprefix("kafka://"), name
        assert int(metadata["lagThreshold"]) > 0
        assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata are strings"
        # More consumers than partitions would idle.
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["maxReplicaCount"] <= DEFAULT_PARTITIONS[topic.value], name


def test_disruption_budgets_and_the_api_autoscaler(docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(docs, "Deployment")
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert budgets.keys() == deployments.keys()
    for name, budget in budgets.items():
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), name
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ai-pipeline",
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_services_select_their_pods(docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    assert services.keys() == deployments.keys()
    for name, service in services.items():
        template = deployments[name]["spec"]["template"]
        assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        (container,) = template["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"], name
    assert services["ai-pipeline"]["spec"]["ports"][0]["port"] == 8000


def test_network_policies(docs: list[dict[str, Any]]) -> None:
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    api_pod = by_kind(docs, "Deployment")["ai-pipeline"]["spec"]["template"]["metadata"]
    agent_pod = by_kind(docs, "Deployment")["triage-agent"]["spec"]["template"]["metadata"]

    def selects(policy: dict[str, Any], pod: dict[str, Any]) -> bool:
        wanted = policy["spec"]["podSelector"].get("matchLabels", {})
        return bool(wanted.items() <= pod["labels"].items())

    def ports(rules: list[dict[str, Any]]) -> set[int]:
        return {p["port"] for rule in rules for p in rule.get("ports", [])}

    ingress = [p for p in policies.values() if "ingress" in p["spec"]]
    open_to_all = [r for p in ingress if selects(p, api_pod) for r in p["spec"]["ingress"]]
    assert any("from" not in r and ports([r]) == {8000} for r in open_to_all)
    (scrape,) = [p for p in ingress if p["metadata"]["name"] == "allow-prometheus-scrape"]
    assert selects(scrape, api_pod) and selects(scrape, agent_pod)
    assert ports(scrape["spec"]["ingress"]) == {8000, 8081}
    for pod in (api_pod, agent_pod):
        egress = [
            r for p in policies.values() if selects(p, pod) for r in p["spec"].get("egress", [])
        ]
        assert {53, 9092, 6379, 443} <= ports(egress)


def test_overlays_differ_where_they_should(rendered: dict[str, list[dict[str, Any]]]) -> None:
    def config(name: str) -> dict[str, str]:
        return dict(by_kind(rendered[name], "ConfigMap")["ai-pipeline-config"]["data"])

    assert config("dev")["AI_PIPELINE_KAFKA_REPLICATION_FACTOR"] == "1"
    assert config("prod")["AI_PIPELINE_KAFKA_REPLICATION_FACTOR"] == "3"
    images = {name: {c["image"] for c in containers(docs)} for name, docs in rendered.items()}
    assert len(images["prod"]) == 1 and len(images["dev"]) == 1
    (prod_image,) = images["prod"]
    assert not prod_image.endswith((":latest", ":dev")) and ":" in prod_image
    hpa = {n: by_kind(d, "HorizontalPodAutoscaler")["ai-pipeline"] for n, d in rendered.items()}
    assert hpa["prod"]["spec"]["minReplicas"] > hpa["dev"]["spec"]["minReplicas"]


def test_the_renderer_fails_on_what_it_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [../base]\ncommonLabels: {team: x}\n".replace("../base", str(K8S / "base"))
    )
    with pytest.raises(AssertionError, match="commonLabels"):
        render(tmp_path)


# --- Docker Compose ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_compose_services_and_their_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*APP_SERVICES, "kafka", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert condition["condition"] in {"service_healthy", "service_started"}
    for name in APP_SERVICES:
        service = services[name]
        environment = service["environment"]
        assert environment["AI_PIPELINE_BUS"] == "kafka://kafka:9092"
        assert environment["AI_PIPELINE_STATE"] == "redis://redis:6379/0"
        assert environment["AI_PIPELINE_AUTH"] == "required"
        assert set(environment) <= SETTINGS_VARIABLES, set(environment) - SETTINGS_VARIABLES
        for secret in ("AI_PIPELINE_GITHUB_TOKEN", "AI_PIPELINE_LLM_API_KEY"):
            assert environment[secret] is None, f"{name}: {secret} must only pass through"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert services["api"]["command"][1:] == ["serve", "--host", "0.0.0.0", "--role", "api"]
    for name, (cli, _) in AGENT_DEPLOYMENTS.items():
        assert services[name]["command"][1:3] == ["agent", cli]
        assert services[name]["depends_on"]["api"]["condition"] == "service_healthy"
        assert "localhost:8081/health" in " ".join(services[name]["healthcheck"]["test"])
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_compose_holds_no_literal_secret(compose: dict[str, Any]) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(TOKEN|API_KEY|PASSWORD)\s*:", line):
            value = line.split(":", 1)[1].split("#")[0].strip()
            assert value == "" or re.fullmatch(r"\$\{[A-Z_]+:?-?\}", value), line
    assert not re.search(r"gh[pousr]_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9]{20,}", text)


def test_compose_prometheus_scrapes_every_app_container(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus-compose.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ai-pipeline"
    targets = {name: sd["port"] for sd in job["dns_sd_configs"] for name in sd["names"]}
    assert targets == {"api": 8000, **dict.fromkeys(AGENT_DEPLOYMENTS, 8081)}
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus-compose.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "../monitoring/alerts:/etc/prometheus/alerts:ro" in volumes


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    shutil.copy(DEPLOY / "prometheus-compose.yml", tmp_path / "prometheus.yml")
    for folder in ("alerts", "rules"):
        shutil.copytree(REPO / "monitoring" / folder, tmp_path / folder)
    result = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rule files found" in result.stdout


def test_compose_grafana_provisions_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    source = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard = mounts["../monitoring/grafana/ai-pipeline-dashboard.json"]
    (provider,) = yaml.safe_load((source / "dashboards" / "ai-pipeline.yml").read_text())[
        "providers"
    ]
    assert Path(dashboard).parent == Path(provider["options"]["path"])
    assert (DEPLOY / "../monitoring/grafana/ai-pipeline-dashboard.json").is_file()
    (datasource,) = yaml.safe_load((source / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


# --- the image -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in logical.splitlines())
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    assert "AS builder" in instructions[stages[0]][1]
    runtime = instructions[stages[-1] :]
    assert "COPY" in {op for op, _ in runtime}
    assert any("--from=builder" in arg for op, arg in runtime if op == "COPY")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in "\n".join(
        f"{op} {arg}" for op, arg in instructions[: stages[0]]
    )
    (user,) = [arg for op, arg in runtime if op == "USER"]
    assert user.split(":")[0] not in {"root", "0"}
    (cmd,) = [arg for op, arg in runtime if op == "CMD"]
    assert yaml.safe_load(cmd) == ["ai-pipeline", "serve", "--host", "0.0.0.0", "--role", "api"]
    healthcheck = [arg for op, arg in runtime if op == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and " CMD " in f" {healthcheck[0]} "
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "data", ".services", "bench/results", ".git", ".env"} <= set(ignored)


def healthcheck_command() -> str:
    (healthcheck,) = [arg for op, arg in dockerfile_instructions() if op == "HEALTHCHECK"]
    return healthcheck.split(" CMD ", 1)[1]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)])
def test_the_image_healthcheck_asks_the_service(status: int | None, healthy: bool) -> None:
    handler = type("Health", (_Health,), {"status": status or 200, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    if status is not None:
        thread.start()
    else:
        server.server_close()  # nobody listens on the port
    try:
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "AI_PIPELINE_PORT": str(port),
        }
        # Docker runs the shell form with /bin/sh -c; `python` is the image's venv python.
        result = subprocess.run(
            ["/bin/sh", "-c", healthcheck_command()], env=env, capture_output=True, timeout=30
        )
    finally:
        if status is not None:
            server.shutdown()
            server.server_close()
    assert (result.returncode == 0) is healthy, result.stderr
    if status is not None:
        assert handler.paths == ["/api/v1/health"]
    assert shlex.split(healthcheck_command())[0] == "python"
