"""Tenants, apps and quotas through the platform's API (auth-rbac's ``/api/v1/tenants``
and ``/api/v1/quotas``, auth-jwt's ``/api/v1/auth/apps``), as the signed-in user."""

from __future__ import annotations

from typing import Any

from gateway_api.console.client import UserApi

QUOTA_FIELDS = ("qps", "qpd", "concurrency")


async def tenants(api: UserApi) -> list[dict[str, Any]]:
    answer = await api.get("/api/v1/tenants")
    return list(answer) if isinstance(answer, list) else list(answer.get("items", []))


async def tenant(api: UserApi, tenant_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = await api.get(f"/api/v1/tenants/{tenant_id}")
    return answer


async def apps(api: UserApi, tenant_id: str | None = None) -> list[dict[str, Any]]:
    answer = await api.get("/api/v1/auth/apps", tenant=tenant_id)
    return list(answer.get("items", []))


async def app(api: UserApi, client_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = await api.get(f"/api/v1/auth/apps/{client_id}")
    return answer


async def app_quotas(api: UserApi, tenant_id: str) -> dict[str, dict[str, Any]]:
    """The app quotas of a tenant, by client id."""
    answer = await api.get("/api/v1/quotas", kind="app", tenant=tenant_id)
    return {q["target"]: q for q in answer.get("quotas", [])}


async def set_app_quota(
    api: UserApi, tenant_id: str, client_id: str, limits: dict[str, int]
) -> dict[str, Any]:
    answer: dict[str, Any] = await api.put(
        "/api/v1/quotas", {"kind": "app", "target": client_id, "tenant": tenant_id, **limits}
    )
    return answer


def quota_limits(values: dict[str, str]) -> dict[str, int]:
    """The limits a form filled in (empty: not limited); ValueError for a bad number."""
    limits: dict[str, int] = {}
    for name in QUOTA_FIELDS:
        raw = values.get(name, "").strip()
        if raw:
            number = int(raw)
            if number < 1:
                raise ValueError(f"{name} must be at least 1")
            limits[name] = number
    return limits
