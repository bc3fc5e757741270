"""The route table: what the gateway runs (from the gateway object) and its releases in
sv-config (``/api/v1/config/...``, as the signed-in user: ``config:edit`` to change the
draft, ``config:publish`` to publish, gray release and roll back)."""

from __future__ import annotations

import difflib
import json
import tomllib
from dataclasses import dataclass
from typing import Any

from gateway_api.console.client import PlatformError, UserApi
from gateway_api.gateway import Gateway
from gateway_api.routing.sv_config import SOURCE_SCHEME, parse_source
from gateway_api.routing.table import Route

#: The namespace the console edits when the gateway does not follow one.
DEFAULT_NAMESPACE = "gateway-routes"


def route_row(route: Route) -> dict[str, Any]:
    """One running route as the page lists it."""
    permission = route.permission
    return {
        "name": route.name,
        "match": "path" if route.path else "prefix",
        "target": route.path or route.prefix or "",
        "methods": ",".join(sorted(route.methods)) if route.methods else "*",
        "service": route.service,
        "scope": route.scope,
        "access": f"{permission.obj}:{permission.act}" if permission else route.access,
        "balancing": route.balancing,
        "rate_limit": "" if route.rate_limit is None else str(route.rate_limit),
    }


def running(gateway: Gateway) -> dict[str, Any]:
    """The table the gateway routes by now: source, version digest and rows."""
    table = gateway.routing.table
    return {
        "source": table.source,
        "version": table.version,
        "rows": [route_row(route) for route in table.routes],
    }


def file_document(gateway: Gateway) -> dict[str, Any]:
    """The gateway's route file as the namespace's document (``routes``, ``defaults``)."""
    with gateway.settings.routes.open("rb") as f:
        data = tomllib.load(f)
    return {"routes": data.get("routes", []), "defaults": data.get("defaults", {})}


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def text_diff(before: Any, after: Any, names: tuple[str, str]) -> list[str]:
    """A unified diff of two documents as pretty JSON (the page colours it)."""
    return list(
        difflib.unified_diff(
            pretty(before).splitlines(),
            pretty(after).splitlines(),
            fromfile=names[0],
            tofile=names[1],
            lineterm="",
            n=3,
        )
    )


@dataclass(frozen=True)
class RouteNamespace:
    """The sv-config namespace holding the route table (environment/cluster/name)."""

    environment: str
    cluster: str
    name: str
    #: The gateway follows it (GATEWAY_ROUTES_SOURCE); otherwise edits are not applied.
    followed: bool

    @classmethod
    def of(cls, gateway: Gateway) -> RouteNamespace:
        settings = gateway.settings
        source = settings.routes_source
        if source.startswith(SOURCE_SCHEME):
            name, cluster = parse_source(source)
            return cls(settings.profile, cluster or "default", name, True)
        return cls(settings.profile, "default", DEFAULT_NAMESPACE, False)

    @property
    def key(self) -> str:
        return f"{self.environment}/{self.cluster}/{self.name}"

    async def info(self, api: UserApi) -> dict[str, Any] | None:
        """The namespace (current and gray release), or None if it does not exist."""
        try:
            answer: dict[str, Any] = await api.get(f"/api/v1/config/namespaces/{self.key}")
        except PlatformError as exc:
            if exc.status == 404:
                return None
            raise
        return answer

    async def create(self, api: UserApi, document: dict[str, Any]) -> None:
        """Make the namespace and put ``document`` in its draft."""
        await api.post(
            "/api/v1/config/namespaces",
            {
                "name": self.name,
                "environment": self.environment,
                "cluster": self.cluster,
                "app": "gateway-api",
                "description": "the gateway's route table (edited in the console)",
            },
        )
        await self.save_draft(api, document)

    async def draft(self, api: UserApi) -> dict[str, Any]:
        answer: dict[str, Any] = await api.get(f"/api/v1/config/drafts/{self.key}")
        return answer

    async def save_draft(self, api: UserApi, document: dict[str, Any]) -> None:
        await api.patch(
            f"/api/v1/config/drafts/{self.key}",
            {"set": {key: {"value": document[key]} for key in ("routes", "defaults")}},
        )

    async def releases(self, api: UserApi, limit: int = 20) -> dict[str, Any]:
        answer: dict[str, Any] = await api.get(f"/api/v1/config/releases/{self.key}", limit=limit)
        return answer

    async def release(self, api: UserApi, number: int) -> dict[str, Any]:
        answer: dict[str, Any] = await api.get(f"/api/v1/config/releases/{self.key}/{number}")
        return answer

    async def publish(self, api: UserApi, comment: str) -> dict[str, Any]:
        answer: dict[str, Any] = await api.post(
            f"/api/v1/config/releases/{self.key}", {"comment": comment}
        )
        return answer

    async def rollback(self, api: UserApi, to: int, comment: str) -> dict[str, Any]:
        answer: dict[str, Any] = await api.post(
            f"/api/v1/config/releases/{self.key}/rollback", {"to": to, "comment": comment}
        )
        return answer

    async def gray(self, api: UserApi, targets: dict[str, Any], comment: str) -> dict[str, Any]:
        answer: dict[str, Any] = await api.post(
            f"/api/v1/config/gray/{self.key}", {"targets": targets, "comment": comment}
        )
        return answer

    async def gray_end(self, api: UserApi, action: str) -> None:
        """``promote`` or ``abort`` the running gray release."""
        await api.post(
            f"/api/v1/config/gray/{self.key}/{action}", {"comment": f"{action} (console)"}
        )
