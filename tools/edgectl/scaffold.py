"""``edgectl new-service sv-foo``: a new service, registered and wired everywhere.

The service is written from ``tools/edgectl/templates/service/`` (a package with
``create_app``, settings, one example domain, Alembic migrations, its tests, a
Kubernetes manifest and a doc page), its entry is appended to ``deploy/services.toml``,
and :func:`edgectl.generate.generate` writes everything that lists services.
"""

from __future__ import annotations

import datetime
import string
from dataclasses import dataclass
from pathlib import Path

from edgectl.generate import generate
from edgectl.registry import NAME, Plane, Registry, env_prefix, load_registry

TEMPLATES = Path(__file__).parent / "templates" / "service"
REGISTRY = "deploy/services.toml"
ROUTES = "app/gateway-api/gateway_api/routes.toml"


class ScaffoldError(ValueError):
    """The service cannot be made: a bad name, or it exists already."""


@dataclass(frozen=True)
class NewService:
    name: str
    package: str
    plane: Plane
    port: int
    local: dict[str | None, int]
    description: str

    @property
    def prefix(self) -> str:
        return env_prefix(self.name)

    @property
    def api_prefix(self) -> str:
        return "/api/v1/" + self.name.removeprefix("sv-")

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "package": self.package,
            "prefix": self.prefix,
            "plane": self.plane,
            "port": str(self.port),
            "api_prefix": self.api_prefix,
            "description": self.description,
            "date": datetime.date.today().isoformat(),
        }


def plan(
    registry: Registry, name: str, plane: Plane, port: int | None, description: str
) -> NewService:
    """The new service's package and ports, free of every port the registry uses."""
    if not NAME.match(name):
        raise ScaffoldError(f"{name!r}: use lowercase words joined by '-', such as sv-foo")
    if name in registry.packages:
        raise ScaffoldError(f"{name} is in the registry already")
    if plane == "gateway":
        raise ScaffoldError("there is one gateway; a new service is global or regional")
    taken = {s.port for s in registry.services}
    taken |= {s.admin_port for s in registry.services if s.admin_port}
    local_taken = {i.port for s in registry.services for lst in s.local.values() for i in lst}
    if port is None:
        same = [s.port for s in registry.of_plane(plane)] or [7100]
        step = 10 if plane == "regional" else 1
        port = max(same) // step * step + step
        while port in taken or port in local_taken:
            port += step
    elif port in taken or port in local_taken:
        raise ScaffoldError(f"port {port} is taken")
    local: dict[str | None, int] = {}
    if plane == "global":
        local[None] = port
    else:
        for index, region in enumerate(registry.regions):
            ports = [i.port for s in registry.of_plane("regional") for i in s.local.get(region, ())]
            local[region] = max(ports) // 10 * 10 + 11 if ports else 7201 + 100 * index
            while local[region] in local_taken | taken:
                local[region] += 10
            local_taken.add(local[region])
    return NewService(name, name.replace("-", "_"), plane, port, local, description)


def registry_entry(service: NewService, registry: Registry) -> str:
    """The service's block for deploy/services.toml."""
    lines = [
        "",
        "[[services]]",
        f'name = "{service.name}"',
        f'package = "{service.package}"',
        f'path = "app/{service.name}"',
        f'plane = "{service.plane}"',
        f"port = {service.port}",
        "database = true",
    ]
    if service.plane == "global":
        lines.append(f"local = [{{ port = {service.local[None]} }}]")
        counts = ", ".join(f"{o.name} = 1" for o in registry.overlays)
        lines.append(f"replicas = {{ {counts} }}")
    else:
        lines += [f"local.{r} = [{{ port = {p} }}]" for r, p in service.local.items()]
    return "\n".join(lines) + "\n"


def route_entry(service: NewService) -> str:
    """The gateway route that sends the service's API prefix to it, for signed-in callers
    (regional services in the caller's home region); edit ``access`` to a permission."""
    lines = [
        "",
        f"# --- {service.name}: {service.description} (edgectl new-service) ---",
        "[[routes]]",
        f'prefix = "{service.api_prefix}"',
        f'service = "{service.name}"',
        'access = "authenticated"',
    ]
    if service.plane == "regional":
        lines.append('scope = "regional"')
    return "\n".join(lines) + "\n"


def _render(template: Path, values: dict[str, str]) -> str:
    text = template.read_text()
    return string.Template(text).substitute(values) if template.suffix == ".tmpl" else text


def _targets(service: NewService) -> dict[Path, Path]:
    """Template -> where it goes, relative to the repository."""
    app = Path("app") / service.name / service.package
    targets: dict[Path, Path] = {}
    for template in sorted((TEMPLATES / "package").rglob("*")):
        if template.is_file():
            relative = template.relative_to(TEMPLATES / "package")
            targets[template] = app / str(relative).removesuffix(".tmpl")
    for template in sorted((TEMPLATES / "tests").glob("*.tmpl")):
        targets[template] = Path("tests") / service.package / template.name.removesuffix(".tmpl")
    k8s = "global" if service.plane == "global" else "regional"
    targets[TEMPLATES / "k8s" / f"{k8s}.yaml.tmpl"] = Path(
        f"deploy/k8s/base/{k8s}/{service.name}.yaml"
    )
    targets[TEMPLATES / "doc" / "service.md.tmpl"] = Path(f"doc/services/{service.name}.md")
    return targets


def new_service(
    root: Path,
    name: str,
    *,
    plane: Plane = "regional",
    port: int | None = None,
    description: str = "a new Edge service",
) -> list[str]:
    """Write the service under ``root``, register it and regenerate; return what changed."""
    registry = load_registry(root / REGISTRY)
    service = plan(registry, name, plane, port, description)
    targets = _targets(service)
    existing = [str(t) for t in targets.values() if (root / t).exists()]
    if existing:
        raise ScaffoldError(f"already there: {', '.join(existing)}")
    for template, target in targets.items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).write_text(_render(template, service.values()))
    with (root / REGISTRY).open("a") as registry_file:
        registry_file.write(registry_entry(service, registry))
    with (root / ROUTES).open("a") as routes_file:
        routes_file.write(route_entry(service))
    written = generate(root)
    return [*(str(t) for t in targets.values()), REGISTRY, ROUTES, *written]
