"""``make generate``: every hand-kept list, written from ``deploy/services.toml``.

Two kinds of output. Whole files (the topologies, each service's BUILD.bazel, the
kustomizations of the regions) carry :data:`HEADER` on their first line. Files that are
mostly written by hand (pyproject.toml, compose, CI, edge.env, the overlays) hold
generated *blocks* between two marker lines::

    # >>> generated from deploy/services.toml by make generate — do not edit (peers)
    ...
    # <<< end of generated block (peers)

Only what lies between the markers is replaced; the markers' indentation is the
block's. :func:`render` computes every output without writing anything, so a test can
compare it with the tree (:func:`stale`).
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

from edgectl.observability import (
    OBSERVABILITY,
    SOURCE_RULES,
    dashboard_files,
    prometheus_rule,
    scrape_config,
)
from edgectl.registry import Registry, Service, load_registry, peer_settings
from edgelib.topology import parse_topology

MARK = "generated from deploy/services.toml by make generate — do not edit"
HEADER = f"# {MARK[0].upper()}{MARK[1:]}."
BEGIN = re.compile(rf"^(?P<indent>[ \t]*)# >>> {re.escape(MARK)} \((?P<name>[\w-]+)\)$")
END = "# <<< end of generated block ({name})"

#: Packages of the distribution besides the services'.
LIB_PACKAGES = ("libs/edgelib", "tools/edgectl")
LIB_DIRS = ("libs", "tools")
LIB_IMPORTS = ("edgelib", "edgectl")

Block = Callable[[Registry], list[str]]


class GenerateError(ValueError):
    """A file to update lacks a generated block it must hold, or has a broken one."""


# --- the topologies --------------------------------------------------------------------------


def _instances(items: list[str]) -> str:
    if len(items) == 1:
        return f"instances = [{items[0]}]"
    return "instances = [\n" + "".join(f"    {item},\n" for item in items) + "]"


def _entry(port_or_url: str, weight: int) -> str:
    return f"{{ {port_or_url}, weight = {weight} }}" if weight != 1 else f"{{ {port_or_url} }}"


def _pools(registry: Registry) -> Iterator[tuple[Service, str | None]]:
    """Every (service, region) pool in topology order: global ones, then each region's."""
    for svc in registry.of_plane("global"):
        yield svc, None
    for region in registry.regions:
        for svc in registry.of_plane("regional"):
            yield svc, region


Items = Callable[[Service, str | None], list[str]]


def comment(text: str, width: int = 90) -> list[str]:
    """``text`` as ``#`` comment lines; a blank line between paragraphs stays one ``#``."""
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("#")
        lines += ["# " + line for line in textwrap.wrap(paragraph, width - 2)]
    return lines


def _topology(
    registry: Registry, intro: str, gateway: list[str], notes: tuple[str, str], items: Items
) -> str:
    gw = registry.gateway
    lines = [HEADER, *comment(intro), "", "[gateway]", *gateway]
    lines += [
        f"port = {gw.port}          # {notes[0]}",
        f"admin_port = {gw.admin_port}    # {notes[1]}",
    ]
    lines.append("")
    for region in registry.regions:
        lines += ["[[regions]]", f'name = "{region}"']
    for svc, pool_region in _pools(registry):
        lines += ["", "[[services]]", f'name = "{svc.name}"']
        if pool_region is not None:
            lines.append(f'region = "{pool_region}"')
        lines.append(_instances(items(svc, pool_region)))
    return "\n".join(lines) + "\n"


def local_topology(registry: Registry) -> str:
    """deploy/local/topology.toml: what ``make up`` starts."""

    def ports(svc: Service, region: str | None) -> list[str]:
        return [
            _entry(
                f"port = {i.port}" + (f", grpc_port = {i.grpc_port}" if i.grpc_port else ""),
                i.weight,
            )
            for i in svc.local[region]
        ]

    return _topology(
        registry,
        (
            "The local stack: which processes `make up` starts, and where the gateway finds "
            "them. Global services run once; regional ones run per region. `weight` feeds the"
            " gateway's weighted balancing. Instances may give `url` instead of `port` "
            "(containers, k8s)."
        ),
        [f'host = "{registry.host}"'],
        ("public listener", "admin API; loopback only"),
        ports,
    )


def container(svc: Service, region: str | None, index: int, count: int) -> str:
    """The compose container of one local instance: ``sv-user-east-2``, ``sv-region``."""
    base = f"{svc.name}-{region}" if region else svc.name
    return f"{base}-{index + 1}" if count > 1 else base


def compose_topology(registry: Registry) -> str:
    """deploy/compose-topology.toml: the gateway's view of docker-compose.yml."""

    def urls(svc: Service, region: str | None) -> list[str]:
        local = svc.local[region]
        found = []
        for i, inst in enumerate(local):
            name = container(svc, region, i, len(local))
            # Containers of one pool share a port: the container names them apart.
            named = f', id = "{name}"' if len(local) > 1 else ""
            grpc = f", grpc_port = {svc.grpc_port}" if svc.grpc_port else ""
            found.append(_entry(f'url = "http://{name}:{svc.port}"{named}{grpc}', inst.weight))
        return found

    return _topology(
        registry,
        (
            "The gateway's view of the docker-compose stack (deploy/docker-compose.yml), "
            "mounted at /etc/edge/topology.toml (GATEWAY_TOPOLOGY). Same format as "
            "deploy/local/topology.toml; instances name their container by `url` instead of a"
            " local `port`: as many containers as the local stack runs, with the same "
            "weights.\n\nThe gateway binds to GATEWAY_HOST / GATEWAY_ADMIN_HOST (set in "
            "docker-compose.yml); this section only records its ports. No `host` here: every "
            "instance below gives its `url`."
        ),
        [],
        (
            "public listener, published on the host",
            "admin API, /readyz and /metrics; published on the host's 127.0.0.1 only",
        ),
        urls,
    )


def k8s_name(svc: Service, region: str | None) -> str:
    """The Kubernetes Service of one pool: ``sv-user-east``, ``sv-region``."""
    return f"{svc.name}-{region}" if region else svc.name


def k8s_topology(registry: Registry) -> str:
    """deploy/k8s/base/gateway-topology.toml: one Kubernetes Service per pool."""

    def urls(svc: Service, region: str | None) -> list[str]:
        grpc = f", grpc_port = {svc.grpc_port}" if svc.grpc_port else ""
        return [f'{{ url = "{url}"{grpc} }}' for url in _k8s_urls(svc, region)]

    return _topology(
        registry,
        (
            "The gateway's upstreams inside the cluster (ConfigMap edge-gateway-topology, "
            "mounted at /etc/edge/topology.toml). Same format as deploy/local/topology.toml; "
            "each instance is a Kubernetes Service, which spreads calls over that "
            "Deployment's ready pods.\n\nThe gateway binds to GATEWAY_HOST / "
            "GATEWAY_ADMIN_HOST (ConfigMap edge-config); this section only records its ports."
            " No `host` here: every instance below gives its `url`."
        ),
        [],
        (
            "public listener, behind the gateway-api Service",
            "admin API, /readyz and /metrics; no Service, NetworkPolicy-restricted",
        ),
        urls,
    )


# --- peers: the same settings for edgectl, compose and Kubernetes ----------------------------


def _compose_urls(svc: Service, region: str | None) -> list[str]:
    n = len(svc.local[region])
    return [f"http://{container(svc, region, i, n)}:{svc.port}" for i in range(n)]


def _k8s_urls(svc: Service, region: str | None) -> list[str]:
    return [f"http://{k8s_name(svc, region)}:{svc.port}"]


# --- blocks ----------------------------------------------------------------------------------


def _toml_list(key: str, items: list[str]) -> list[str]:
    return [f"{key} = [", *(f'    "{item}",' for item in items), "]"]


def pyproject_packages(registry: Registry) -> list[str]:
    paths = [f"{s.path}/{s.package}" for s in registry.services]
    return _toml_list("packages", [*LIB_PACKAGES, *paths])


def pyproject_dirs(registry: Registry) -> list[str]:
    return _toml_list("dev-mode-dirs", [*LIB_DIRS, *(s.path for s in registry.services)])


def pyproject_first_party(registry: Registry) -> list[str]:
    return _toml_list("known-first-party", [*LIB_IMPORTS, *registry.packages.values()])


def pyproject_mypy_path(registry: Registry) -> list[str]:
    return [f'mypy_path = "{":".join([*LIB_DIRS, *(s.path for s in registry.services)])}"']


def platform_services(registry: Registry) -> list[str]:
    names = ["gateway-api", *(s.name for s in registry.services if s.name != "gateway-api")]
    return [
        "PLATFORM_SERVICES = frozenset(",
        "    {",
        *(f'        "{name}",' for name in names),
        "    }",
        ")",
    ]


def ci_images(registry: Registry) -> list[str]:
    pairs = " ".join(f"{s.name}:{s.package}" for s in registry.services)
    return ["# <service>:<package>, one image each.", f'EDGE_IMAGES: "{pairs}"']


def ci_matrix(registry: Registry) -> list[str]:
    return [f"- {{ SERVICE: {s.name}, PACKAGE: {s.package} }}" for s in registry.services]


def compose_peers(registry: Registry) -> list[str]:
    lines = []
    for setting, value in peer_settings(registry, _compose_urls, registry.regions):
        quoted = f"'{value}'" if value.startswith(("{", "[")) else value
        lines.append(f"{setting}: {quoted}")
    return lines


def compose_services(registry: Registry, text: str) -> list[str]:
    """One container per local instance of every global and regional service."""
    lines: list[str] = []
    for plane in ("global", "regional"):
        for region in (None,) if plane == "global" else registry.regions:
            title = "global services" if region is None else f"region {region}"
            lines += [f"# --- {title} ".ljust(93, "-")]
            for svc in registry.of_plane(plane):
                lines += _compose_service(svc, region, text)
    return lines[:-1]


def _compose_service(svc: Service, region: str | None, text: str) -> list[str]:
    lines: list[str] = []
    count = len(svc.local[region])
    extra = f"{svc.name}-env"
    merge = f"[*edge-env, *{extra}]" if f"&{extra}\n" in text else "*edge-env"
    for i in range(count):
        name = container(svc, region, i, count)
        base = container(svc, region, 0, 1)
        lines += [
            f"{name}:",
            "  <<: *service",
            f"  image: edge/{svc.name}:${{EDGE_TAG:-dev}}",
            f"  build: {{ <<: *build, args: {{ SERVICE: {svc.name}, PACKAGE: {svc.package} }} }}",
            # Each container reads only its own keyring (edgectl keys write; doc/deploy.md).
            "  volumes:",
            f"    - ${{EDGE_KEYS_DIR:?set EDGE_KEYS_DIR (see doc/deploy.md)}}/{svc.name}.json"
            f":/run/edge-keys/{svc.name}.json:ro",
            "  environment:",
            f"    <<: {merge}",
            f"    EDGE_SERVICE_KEYS_FILE: /run/edge-keys/{svc.name}.json",
            f"    {svc.prefix}HOST: 0.0.0.0",
        ]
        if region is not None:
            lines.append(f"    {svc.prefix}REGION: {region}")
        lines.append(f"    {svc.prefix}INSTANCE_ID: {base}-{i + 1}")
        if svc.grpc_port:
            lines.append(f'    {svc.prefix}GRPC_PORT: "{svc.grpc_port}"')
        if svc.database:
            lines.append(f'    {svc.prefix}MIGRATE_ON_START: "true"')
        if i > 0 and svc.database:
            # The first instance migrates the schema; the others start once it is done.
            first = container(svc, region, 0, count)
            lines += ["  depends_on:", "    <<: *needs-data", f"    {first}:"]
            lines.append("      condition: service_healthy")
        lines.append("")
    return lines


def compose_gateway_needs(registry: Registry) -> list[str]:
    lines = []
    for svc, region in _pools(registry):
        count = len(svc.local[region])
        for i in range(count):
            lines.append(f"{container(svc, region, i, count)}: {{ condition: service_healthy }}")
    return lines


def k8s_resources(registry: Registry) -> list[str]:
    lines = [f"- global/{s.name}.yaml" for s in registry.of_plane("global")]
    return lines + [f"- regions/{r}" for r in registry.regions]


def edge_env_hosts(registry: Registry) -> list[str]:
    lines = [f"{s.prefix}HOST=0.0.0.0" for s in registry.services]
    return lines + [f"{s.prefix}GRPC_PORT={s.grpc_port}" for s in registry.services if s.grpc_port]


def edge_env_migrations(registry: Registry) -> list[str]:
    return [f"{s.prefix}MIGRATE_ON_START=false" for s in registry.services if s.database]


def edge_env_peers(registry: Registry) -> list[str]:
    return [
        f"{setting}={value}"
        for setting, value in peer_settings(registry, _k8s_urls, registry.regions)
    ]


def overlay_images(overlay_name: str) -> Block:
    def block(registry: Registry) -> list[str]:
        overlay = next(o for o in registry.overlays if o.name == overlay_name)
        tag = f'"{overlay.tag}"' if re.fullmatch(r"[\d.]+", overlay.tag) else overlay.tag
        lines = []
        for svc in registry.services:
            lines.append(f"- name: edge/{svc.name}")
            if overlay.image_registry:
                lines.append(f"  newName: {overlay.image_registry}/{svc.name}")
            lines.append(f"  newTag: {tag}")
        return lines

    return block


def overlay_replicas(overlay_name: str) -> Block:
    def block(registry: Registry) -> list[str]:
        lines = []
        for svc in registry.services:
            if overlay_name in svc.replicas:
                lines += [f"- name: {svc.name}", f"  count: {svc.replicas[overlay_name]}"]
        return lines

    return block


# --- whole files -----------------------------------------------------------------------------


def build_file(svc: Service) -> str:
    return f'''{HEADER}
# {svc.name}: `bazel run //{svc.path}` runs `python -m {svc.package}` (doc/bazel.md).
py_binary(
    name = "{svc.name}",
    srcs = glob(["{svc.package}/**/*.py"]),
    main = "{svc.package}/__main__.py",
    data = glob(
        ["{svc.package}/**"],
        exclude = ["**/*.py", "**/*.pyc", "**/__pycache__/**"],
    ),
    imports = ["."],
    deps = ["//libs:edgelib"],
)
'''


def regional_kustomization(registry: Registry) -> str:
    resources = "".join(f"  - {s.name}.yaml\n" for s in registry.of_plane("regional"))
    return f"""{HEADER}
# The regional services, not yet bound to a region: regions/<region> include this folder
# with a name suffix, a region label (also in selectors) and their own edge-region
# ConfigMap, whose `region` key each service reads as <PREFIX>REGION.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

resources:
{resources}"""


def region_kustomization(region: str) -> str:
    return f"""{HEADER}
# Region {region}: the regional services named <service>-{region}, selecting only their own pods.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

nameSuffix: -{region}

labels:
  - pairs:
      edge/region: {region}
    includeSelectors: true
    includeTemplates: true

resources:
  - ../../regional

configMapGenerator:
  - name: edge-region
    literals:
      - region={region}
"""


def istio_destination_rules(registry: Registry) -> str:
    """components/istio/destination-rules.yaml: outlier detection for every pool's Service."""
    docs = []
    for svc, region in _pools(registry):
        if svc.name == registry.gateway.name:
            continue
        name = k8s_name(svc, region)
        docs.append(
            f"""apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: {name}
spec:
  host: {name}
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
    outlierDetection:
      consecutive5xxErrors: 5
      consecutiveGatewayErrors: 3
      interval: 5s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 0
"""
        )
    intro = comment(
        "One DestinationRule per Kubernetes Service of a pool: the sidecars eject a pod "
        "that answers 5 5xx (or 3 502/503/504) in a row for 30 s, at most half of a pool at "
        "once, and speak Istio mTLS to it. The gateway's own breakers act on the pods it "
        "discovers; these cover calls made by Service name (doc/discovery.md)."
    )
    return HEADER + "\n" + "\n".join(intro) + "\n" + "---\n".join(docs)


# --- putting it together ---------------------------------------------------------------------

K8S = "deploy/k8s"

#: File -> block name -> what goes between its markers.
BLOCKS: dict[str, dict[str, Block]] = {
    "pyproject.toml": {
        "packages": pyproject_packages,
        "dev-mode-dirs": pyproject_dirs,
        "first-party": pyproject_first_party,
        "mypy-path": pyproject_mypy_path,
    },
    "libs/edgelib/services.py": {"services": platform_services},
    ".gitlab-ci.yml": {"images": ci_images, "build-matrix": ci_matrix},
    "deploy/docker-compose.yml": {"peers": compose_peers, "gateway-needs": compose_gateway_needs},
    f"{K8S}/base/kustomization.yaml": {"resources": k8s_resources},
    f"{K8S}/base/edge.env": {
        "hosts": edge_env_hosts,
        "migrations": edge_env_migrations,
        "peers": edge_env_peers,
    },
    f"{K8S}/overlays/minikube/kustomization.yaml": {
        "images": overlay_images("minikube"),
        "replicas": overlay_replicas("minikube"),
    },
    f"{K8S}/overlays/ack/kustomization.yaml": {
        "images": overlay_images("ack"),
        "replicas": overlay_replicas("ack"),
    },
    f"{K8S}/overlays/istio/kustomization.yaml": {
        "images": overlay_images("istio"),
    },
}


def whole_files(registry: Registry) -> dict[str, str]:
    files = {
        "deploy/local/topology.toml": local_topology(registry),
        "deploy/compose-topology.toml": compose_topology(registry),
        f"{K8S}/base/gateway-topology.toml": k8s_topology(registry),
        f"{K8S}/base/regional/kustomization.yaml": regional_kustomization(registry),
        f"{K8S}/components/istio/destination-rules.yaml": istio_destination_rules(registry),
    }
    for region in registry.regions:
        files[f"{K8S}/base/regions/{region}/kustomization.yaml"] = region_kustomization(region)
    for svc in registry.services:
        files[f"{svc.path}/BUILD.bazel"] = build_file(svc)
    files.update(dashboard_files(registry))
    local = parse_topology(tomllib.loads(files["deploy/local/topology.toml"]))
    files[f"{OBSERVABILITY}/prometheus/prometheus-local.yml"] = (
        f"{HEADER}\n# The local stack (make up); `make observe` runs Prometheus on it.\n"
        + scrape_config(local)
    )
    compose = parse_topology(tomllib.loads(files["deploy/compose-topology.toml"]))
    files[f"{OBSERVABILITY}/prometheus/prometheus-compose.yml"] = (
        f"{HEADER}\n# docker compose --profile observability (deploy/docker-compose.yml).\n"
        + scrape_config(compose, gateway_target="gateway-api:7080")
    )
    files[f"{K8S}/components/prometheus-operator/prometheus-rules.yaml"] = (
        f"{HEADER}\n# The alert rules of {OBSERVABILITY}/prometheus/rules/*.yml for the operator.\n"
        + prometheus_rule(SOURCE_RULES)
    )
    return files


def fill_blocks(text: str, blocks: dict[str, Callable[[str], list[str]]], where: str) -> str:
    """``text`` with the lines between each block's markers replaced."""
    lines = text.split("\n")
    out: list[str] = []
    found: set[str] = set()
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        begin = BEGIN.match(line)
        if begin is None:
            continue
        name, indent = begin["name"], begin["indent"]
        if name not in blocks:
            raise GenerateError(f"{where}: unknown generated block ({name})")
        end = indent + END.format(name=name)
        try:
            stop = lines.index(end, i)
        except ValueError:
            raise GenerateError(f"{where}: block ({name}) has no end marker {end!r}") from None
        out += [indent + item if item else "" for item in blocks[name](text)]
        out.append(end)
        found.add(name)
        i = stop + 1
    missing = sorted(set(blocks) - found)
    if missing:
        raise GenerateError(f"{where}: no generated block for {', '.join(missing)}")
    return "\n".join(out)


def render(root: Path, registry: Registry | None = None) -> dict[str, str]:
    """Relative path -> the content it must have, for every generated file and block."""
    registry = registry or load_registry(root / "deploy/services.toml")
    result = whole_files(registry)
    for path, blocks in BLOCKS.items():
        bound = {name: _bind(fn, registry) for name, fn in blocks.items()}
        if path == "deploy/docker-compose.yml":
            bound["services"] = lambda text: compose_services(registry, text)
        result[path] = fill_blocks((root / path).read_text(), bound, path)
    return result


def _bind(block: Block, registry: Registry) -> Callable[[str], list[str]]:
    return lambda _text: block(registry)


def stale(root: Path) -> list[str]:
    """Generated files whose content differs from what the registry gives."""
    return sorted(
        path
        for path, content in render(root).items()
        if not (root / path).is_file() or (root / path).read_text() != content
    )


def generate(root: Path) -> list[str]:
    """Write every stale generated file; return the paths written."""
    written = []
    for path, content in sorted(render(root).items()):
        target = root / path
        if target.is_file() and target.read_text() == content:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        written.append(path)
    return written
