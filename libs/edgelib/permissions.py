"""Services check their own admin endpoints' permissions, on the gateway-signed identity.

The gateway already authorizes each route, but a route table is configuration: one
wrong line could send a plain user's request to an admin endpoint. So each admin
endpoint declares the permission it needs (``RequirePermission("config:publish")``)
and the service asks auth-rbac, the policy's owner, about the signed caller (a signed
``POST /internal/enforce``), keeping each decision for ``ttl`` seconds. No answer from
auth-rbac means no access (503), never an open door.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from fastapi import Depends, Request

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.deps import CurrentUser
from edgelib.identity import Identity
from edgelib.problems import Forbidden, ServiceUnavailable

ENFORCE_PATH = "/internal/enforce"
DEFAULT_DOMAIN = "default"


class PermissionsUnavailable(Exception):
    """The policy could not be asked."""


class PermissionCheck(Protocol):
    """Decides whether a user holds a permission."""

    async def allowed(
        self, user_id: str, obj: str, act: str, domain: str | None = None
    ) -> bool: ...


class PolicyPermissions:
    """Asks auth-rbac over its signed internal API, with a short per-decision cache."""

    def __init__(
        self,
        client: ServiceClient,
        *,
        domain: str = DEFAULT_DOMAIN,
        ttl: float = 1.0,
        max_entries: int = 10_000,
    ) -> None:
        self.client = client
        self.domain = domain
        self.ttl = ttl
        self.max_entries = max_entries
        self._decisions: dict[tuple[str, str, str, str], tuple[float, bool]] = {}

    async def allowed(self, user_id: str, obj: str, act: str, domain: str | None = None) -> bool:
        """Whether ``user_id`` holds ``obj:act`` in ``domain`` (this checker's by default);
        raises :class:`PermissionsUnavailable`."""
        dom = self.domain if domain is None else domain
        key = (dom, user_id, obj, act)
        now = time.monotonic()
        hit = self._decisions.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        body = {"sub": user_id, "dom": dom, "obj": obj, "act": act}
        try:
            # A decision is a read: a retry on another auth-rbac instance is safe.
            response = await self.client.post(ENFORCE_PATH, json=body, idempotent=True)
        except ServiceCallError as exc:
            raise PermissionsUnavailable(str(exc)) from exc
        if response.status_code != 200:
            raise PermissionsUnavailable(f"auth-rbac answered {response.status_code}")
        try:
            allowed = response.json()["allowed"] is True
        except (ValueError, KeyError, TypeError) as exc:
            raise PermissionsUnavailable("auth-rbac answered an unreadable decision") from exc
        if len(self._decisions) >= self.max_entries:
            self._decisions.clear()
        self._decisions[key] = (now + self.ttl, allowed)
        return allowed

    async def aclose(self) -> None:
        await self.client.aclose()


class _Requirement:
    """The dependency behind :func:`RequirePermission`."""

    def __init__(self, obj: str, act: str, *, in_tenant: bool = False) -> None:
        self.obj = obj
        self.act = act
        self.in_tenant = in_tenant

    async def __call__(self, request: Request, identity: CurrentUser) -> Identity:
        check: PermissionCheck | None = getattr(request.app.state, "permissions", None)
        try:
            if check is None:
                raise PermissionsUnavailable("this service holds no key for auth-rbac")
            if self.in_tenant:
                allowed = await check.allowed(identity.user_id, self.obj, self.act, identity.tenant)
            else:
                allowed = await check.allowed(identity.user_id, self.obj, self.act)
        except PermissionsUnavailable as exc:
            raise ServiceUnavailable(
                "permissions cannot be checked now", headers={"Retry-After": "1"}
            ) from exc
        if not allowed:
            raise Forbidden(f"this needs the permission {self.obj}:{self.act}")
        return identity


def RequirePermission(permission: str, *, in_tenant: bool = False) -> Any:
    """``Depends`` giving the signed caller when they hold ``permission`` (``obj:act``).

    Use as ``admin: Annotated[Identity, RequirePermission("logs:read")]``: 401 without
    a gateway-signed identity, 403 without the permission, 503 when the policy cannot
    be asked. The permission is checked in the ``default`` domain (the platform's own
    administration), or with ``in_tenant=True`` in the caller's active tenant, for
    endpoints whose records belong to a tenant (the endpoint then keeps the caller to
    that tenant's records).
    """
    obj, sep, act = permission.partition(":")
    if not sep or not obj or not act:
        raise ValueError(f"a permission is object:action, not {permission!r}")
    return Depends(_Requirement(obj, act, in_tenant=in_tenant))
