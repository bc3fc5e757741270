"""Authorization at the gateway: auth-rbac's Casbin policy, embedded and kept current.

The gateway holds the whole policy (model and rules, from auth-rbac's signed
``GET /internal/policy``) in a Casbin enforcer, plus a cache of its decisions. A
request's check is one dictionary lookup once its (user, object, action) has been
decided; a first decision runs Casbin in memory. No request waits on the network.

The policy follows auth-rbac two ways: a version number on the backend's pub/sub
channel after every change (with Redis, every gateway hears it at once), and a poll
of ``/internal/policy?since=<version>`` every half second (the fallback, and the only
path between processes with the in-process backend of the local profile). A new
version replaces the enforcer and its decision cache together.

Subjects are user ids (the token's ``sub``; an app's client id), in the caller's
tenant: the token's ``tenant`` claim names the Casbin domain, and a token without one
is checked in ``GATEWAY_AUTHZ_DOMAIN`` (``default``). A role held in one domain grants
nothing in another. Default deny: no rule, no entry. Until a first policy has loaded
every permission route answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from edgelib.backends import Backend, BackendError
from edgelib.identity import DEFAULT_TENANT, Identity
from edgelib.policy import build_enforcer
from edgelib.signing import ServiceSigner
from gateway_api.config import AuthzSettings
from gateway_api.problems import PermissionDenied, PolicyUnavailable
from gateway_api.routing.table import Permission
from gateway_api.security.control import ControlPlaneService
from gateway_api.topology import Topology

logger = logging.getLogger("gateway.authz")


@dataclass
class PolicySnapshot:
    """One policy version: its enforcer and the decisions made with it so far."""

    version: int
    enforcer: Any
    rules: int
    decisions: dict[tuple[str, str, str, str], bool] = field(default_factory=dict)

    @classmethod
    def build(cls, version: int, model_text: str, rules: Sequence[Sequence[str]]) -> PolicySnapshot:
        return cls(version, build_enforcer(model_text, rules), len(rules))


class AuthRbac(ControlPlaneService):
    """auth-rbac as the gateway calls it: over the gateway's aiohttp session, signed."""

    name = "auth-rbac"
    destination = "auth-rbac"

    def __init__(self, base_urls: list[str], signer: ServiceSigner, *, timeout: float = 5.0):
        if not base_urls:
            raise ValueError(
                "the gateway needs auth-rbac's URL (topology or GATEWAY_AUTH_RBAC_URL)"
            )
        super().__init__(base_urls, signer, timeout=timeout)

    async def policy(self, since: int | None) -> Mapping[str, Any]:
        """The policy document; only its version when ``since`` is still current."""
        target = "/internal/policy" if since is None else f"/internal/policy?since={since}"
        return await self.get_json(target)


class Authorizer:
    """Decides whether an identity holds a permission, from the embedded policy; default deny."""

    def __init__(
        self,
        source: AuthRbac | None,
        *,
        backend: Backend | None = None,
        settings: AuthzSettings | None = None,
    ) -> None:
        self.source = source
        self.backend = backend
        self.settings = settings or AuthzSettings()
        self.domain = self.settings.authz_domain
        self._snapshot: PolicySnapshot | None = None
        #: The current snapshot's decisions, for the gateway's compiled fast path
        #: (``Gateway.authorize``): (subject, object, action) -> allowed.
        self.decisions: dict[tuple[str, str, str, str], bool] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._source_ok: bool | None = None
        self.loads = 0

    @classmethod
    def for_gateway(
        cls,
        topology: Topology,
        signer: ServiceSigner,
        settings: AuthzSettings,
        *,
        backend: Backend | None,
    ) -> Authorizer:
        """Wired to auth-rbac (from the topology unless configured) and the event backend."""
        if settings.auth_rbac_url:
            urls = [u.strip() for u in settings.auth_rbac_url.split(",") if u.strip()]
        else:
            urls = [i.url for i in topology.instances if i.service == "auth-rbac"]
        if not urls:
            logger.warning("no auth-rbac instance known: every permission route answers 503")
            return cls(None, backend=backend, settings=settings)
        return cls(AuthRbac(urls, signer), backend=backend, settings=settings)

    @property
    def version(self) -> int | None:
        return None if self._snapshot is None else self._snapshot.version

    # --- the per-request step -----------------------------------------------------

    def domain_of(self, identity: Identity) -> str:
        """The Casbin domain the caller's permissions are checked in: its tenant."""
        tenant = identity.tenant
        return self.domain if tenant == DEFAULT_TENANT else tenant

    def allowed(self, subject: str, obj: str, act: str, domain: str | None = None) -> bool:
        """Whether ``subject`` may do ``act`` on ``obj`` in ``domain`` (the configured one
        when None); raises when no policy is loaded."""
        snapshot = self._snapshot
        if snapshot is None:
            raise PolicyUnavailable(
                "the gateway has not loaded the authorization policy yet",
                headers={"Retry-After": "1"},
            )
        dom = self.domain if domain is None else domain
        key = (dom, subject, obj, act)
        decision = snapshot.decisions.get(key)
        if decision is None:
            decision = bool(snapshot.enforcer.enforce(subject, dom, obj, act))
            if len(snapshot.decisions) >= self.settings.decision_cache_size:
                snapshot.decisions.clear()
            snapshot.decisions[key] = decision
        return decision

    def authorize(self, identity: Identity, permission: Permission) -> None:
        """Return when allowed; otherwise raise a 403 (or 503 before any policy) problem."""
        if not self.allowed(
            identity.user_id, permission.obj, permission.act, self.domain_of(identity)
        ):
            raise PermissionDenied(
                f"missing permission {permission.obj}:{permission.act}",
                permission=f"{permission.obj}:{permission.act}",
            )

    # --- keeping the policy current -------------------------------------------------

    async def install(self, document: Mapping[str, Any]) -> bool:
        """Adopt a policy document unless it is the version we hold; True when adopted.

        A lower version is adopted too: auth-rbac answers from its database, so a lower
        number means the database was restored, and its content is the truth.
        """
        version = document.get("version")
        if not isinstance(version, int):
            raise ValueError("policy document without a version")
        current = self._snapshot
        if not document.get("changed", True) or (
            current is not None and version == current.version
        ):
            return False
        model_text, rules = document.get("model"), document.get("rules")
        if not isinstance(model_text, str) or not isinstance(rules, list):
            raise ValueError("policy document without model or rules")
        started = time.perf_counter()
        # Built off the event loop: the hot path keeps the old snapshot meanwhile.
        snapshot = await asyncio.to_thread(PolicySnapshot.build, version, model_text, rules)
        self._snapshot = snapshot
        self.decisions = snapshot.decisions
        self.loads += 1
        logger.info(
            "policy loaded",
            extra={
                "version": version,
                "rules": snapshot.rules,
                "build_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return True

    async def refresh(self, *, at_least: int | None = None) -> bool:
        """Fetch the policy when auth-rbac has a newer one; False when the fetch failed."""
        if self.source is None:
            return False
        current = self._snapshot
        if current is not None and at_least is not None and current.version >= at_least:
            return True
        async with self._lock:
            try:
                document = await self.source.policy(self.version)
                await self.install(document)
            except Exception as exc:
                if self._source_ok is not False:
                    logger.warning(
                        "policy source unavailable",
                        extra={"error": f"{type(exc).__name__}: {exc}"},
                    )
                self._source_ok = False
                return False
        if self._source_ok is False:
            logger.info("policy source back")
        self._source_ok = True
        return True

    async def start(self, session: aiohttp.ClientSession | None = None) -> None:
        """Load the policy (waiting a little for auth-rbac), then keep it current."""
        if self.source is None:
            return
        self.source.session = session
        deadline = time.monotonic() + self.settings.policy_start_wait
        # Polls auth-rbac (a remote answer: no local event to wait on) for a short while.
        while not await self.refresh():
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="gateway-policy-poll"))
        if self.backend is not None:
            self._tasks.append(
                asyncio.create_task(self._listen_loop(), name="gateway-policy-listen")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.policy_poll_interval)
            await self.refresh()

    async def _listen_loop(self) -> None:
        assert self.backend is not None
        while True:
            try:
                subscription = await self.backend.subscribe(self.settings.policy_channel)
                try:
                    async for _channel, message in subscription:
                        try:
                            version = int(message)
                        except ValueError:
                            logger.warning("malformed policy notification")
                            continue
                        await self.refresh(at_least=version)
                finally:
                    await subscription.close()
            except BackendError as exc:
                logger.warning("policy channel lost", extra={"error": str(exc)})
            await asyncio.sleep(1.0)

    def snapshot(self) -> dict[str, object]:
        """State for ``/admin/cluster``: policy version, size and cached decisions."""
        current = self._snapshot
        return {
            "policy_version": None if current is None else current.version,
            "rules": None if current is None else current.rules,
            "cached_decisions": 0 if current is None else len(current.decisions),
            "loads": self.loads,
            "source": {None: "unknown", True: "ok", False: "failing"}[self._source_ok],
        }
