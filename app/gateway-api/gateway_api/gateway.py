"""The gateway's shared state: routes, upstream pools, the forwarding session, health."""

from __future__ import annotations

import enum
import logging
from collections.abc import MutableMapping
from typing import Any

import aiohttp

from edgelib.backends import Backend
from edgelib.identity import Identity
from edgelib.problems import Unauthorized
from edgelib.signing import ServiceSigner
from gateway_api import native
from gateway_api.authn import Authenticator
from gateway_api.authz import Authorizer
from gateway_api.config import AuthnSettings, AuthzSettings, Settings
from gateway_api.ejections import EjectionBus
from gateway_api.forwarding import RESPONSE_DROPPED, RESPONSE_DROPPED_PRIVATE
from gateway_api.health import HealthChecker
from gateway_api.http_client import HttpClient
from gateway_api.problems import PolicyUnavailable
from gateway_api.ratelimit import RateLimiter
from gateway_api.regions import RegionResolver
from gateway_api.routes_config import ConfigRoutes
from gateway_api.routes_reload import RouteWatcher
from gateway_api.routing import Permission, Route, RouteRules, RouteTable, load_routes
from gateway_api.signing import ForwardSigner
from gateway_api.topology import load_topology
from gateway_api.upstreams import RetryBudget, Upstreams

logger = logging.getLogger("gateway")


class Missing(enum.Enum):
    MISSING = "missing"


#: "Not known without a network call" (the region cache's miss).
MISSING = Missing.MISSING


class Gateway:
    """Built from files at construction; network resources are made in :meth:`start`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topology = load_topology(settings.topology)
        #: What any route table (file or sv-config release) may name.
        self.route_rules = RouteRules(
            frozenset(i.service for i in topology.instances), settings.reserved()
        )
        self.routes: RouteTable = load_routes(settings.routes, self.route_rules)
        self.retry_budget = RetryBudget(ratio=settings.retry_budget_ratio)
        self._route_watch: RouteWatcher | None = None
        self._route_config: ConfigRoutes | None = None
        self.regions: RegionResolver | None = None
        self.backend: Backend | None = None
        self.upstreams = Upstreams(topology)
        #: Upstream response headers never passed on (x-edge-instance unless exposed).
        self.response_dropped = (
            RESPONSE_DROPPED if settings.instance_header_exposed else RESPONSE_DROPPED_PRIVATE
        )
        keyring = settings.keyring()
        self.signer = ServiceSigner(
            settings.service_name, keyring, max_skew=settings.signature_max_skew
        )
        #: Signs every forwarded request (compiled; the same signatures as ``signer``).
        self.forward_signer = ForwardSigner(
            settings.service_name, keyring, sign_bodies=settings.sign_bodies
        )
        self._session: aiohttp.ClientSession | None = None
        #: The forwarding core's keep-alive pools (the hot path; see http_client.py).
        self.client = HttpClient(idle_timeout=settings.upstream_idle_timeout)
        self._health: HealthChecker | None = None
        self.authn: Authenticator | None = None
        self.authz: Authorizer | None = None
        #: Per-route rate limits; counts shared through the backend once started.
        self.limiter = RateLimiter(None, sync_interval=settings.rate_limit_sync_interval)
        #: Breakers opened in one worker open in the others (through the backend).
        self.ejections: EjectionBus | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "gateway not started"
        return self._session

    @property
    def health(self) -> HealthChecker:
        assert self._health is not None, "gateway not started"
        return self._health

    async def start(self, backend: Backend | None = None) -> None:
        """Open the forwarding session and start background work; ``backend`` carries events."""
        logger.info("gateway code", extra={"native": native.status})
        self.backend = backend
        self.limiter.backend = backend if self.settings.rate_limit_shared else None
        await self.limiter.start()
        if backend is not None:
            self.ejections = EjectionBus(self.upstreams, backend)
            await self.ejections.start()
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        self._health = HealthChecker(
            self.upstreams,
            self._session,
            interval=self.settings.health_interval,
            timeout=self.settings.health_timeout,
            healthy_threshold=self.settings.healthy_threshold,
            unhealthy_threshold=self.settings.unhealthy_threshold,
        )
        await self._health.probe_all()
        self._health.start()
        if self.settings.routes_source:
            self._route_config = ConfigRoutes(self, self.settings.routes_source)
            await self._route_config.start()
        else:
            self._route_watch = RouteWatcher(self, self.settings.routes)
            self._route_watch.start()
        self.regions = RegionResolver(
            pool=self.upstreams.pool("sv-region", None),
            session=self._session,
            signer=self.signer,
            backend=backend,
            ttl=self.settings.region_cache_ttl,
        )
        await self.regions.start()
        self.authn = Authenticator.for_gateway(
            self.settings.topology, self.signer, AuthnSettings(), backend=backend
        )
        await self.authn.start(self._session)
        self.authz = Authorizer.for_gateway(
            self.settings.topology, self.signer, AuthzSettings(), backend=backend
        )
        await self.authz.start(self._session)

    async def stop(self) -> None:
        await self.limiter.stop()
        if self.ejections is not None:
            await self.ejections.stop()
        if self.authz is not None:
            await self.authz.stop()
        if self.authn is not None:
            await self.authn.stop()
        if self.regions is not None:
            await self.regions.stop()
        if self._route_watch is not None:
            await self._route_watch.stop()
        if self._route_config is not None:
            await self._route_config.stop()
        if self._health is not None:
            await self._health.stop()
        if self._session is not None:
            await self._session.close()
        self.client.close()

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Identity:
        """The verified caller of a non-public route, or a 401 problem."""
        if self.authn is None:
            raise Unauthorized("the gateway is starting", headers={"WWW-Authenticate": "Bearer"})
        return await self.authn.authenticate(scope)

    def authorize(self, identity: Identity, permission: Permission) -> None:
        """Allow the call or raise a 403 problem: auth-rbac's policy, embedded (authz.py)."""
        authz = self.authz
        if authz is None:
            raise PolicyUnavailable("the gateway is starting", headers={"Retry-After": "1"})
        # A decision already made allows without leaving compiled code; anything else
        # (not decided yet, a denial, no policy) goes through the authorizer.
        if authz.decisions.get((identity.user_id, permission.obj, permission.act)) is not True:
            authz.authorize(identity, permission)

    def cached_region(self, route: Route, identity: Identity | None) -> str | Missing | None:
        """:meth:`region_for` when it needs no I/O, else :data:`MISSING`."""
        if route.scope != "regional":
            return None
        if identity is None:
            return self.settings.default_region
        if self.regions is None:
            return identity.region
        region = self.regions.cached(identity.user_id)
        return MISSING if region is None else region

    async def region_for(self, route: Route, identity: Identity | None) -> str | None:
        """The region whose instances serve this request (None for global services)."""
        region = self.cached_region(route, identity)
        if region is not MISSING:
            return region
        assert self.regions is not None
        assert identity is not None
        return await self.regions.region_of(identity)

    def cluster(self) -> dict[str, object]:
        pools = list(self.upstreams.pools.values())
        return {
            "gateway": {
                "instance": self.settings.instance_id,
                "public": f"http://{self.settings.host}:{self.settings.port}",
                "admin": f"http://{self.settings.admin_host}:{self.settings.admin_port}",
            },
            "routes": {"source": self.routes.source, "count": len(self.routes.routes)},
            "rate_limits": self.limiter.snapshot(),
            "regions": list(self.upstreams.topology.regions),
            "services": [p.snapshot() for p in pools],
            "totals": {
                "instances": sum(len(p.instances) for p in pools),
                "healthy": sum(1 for p in pools for i in p.instances if i.healthy),
            },
        }
