"""The gateway's shared state: routes, upstream pools, the forwarding session, health."""

from __future__ import annotations

import enum
import logging
from collections.abc import MutableMapping
from typing import Any, Final

import aiohttp

from edgelib.backends import Backend
from edgelib.discovery import open_source
from edgelib.identity import DEFAULT_TENANT, Identity
from edgelib.problems import Unauthorized
from edgelib.signing import ServiceSigner
from gateway_api import native
from gateway_api.config import Settings
from gateway_api.forwarding import RESPONSE_DROPPED, RESPONSE_DROPPED_PRIVATE
from gateway_api.metrics import GatewayMetrics
from gateway_api.problems import PolicyUnavailable
from gateway_api.routing.reload import RouteWatcher
from gateway_api.routing.sv_config import ConfigRoutes
from gateway_api.routing.table import Permission, Route, RouteRules, RouteTable, load_routes
from gateway_api.security.authn import Authenticator
from gateway_api.security.authz import Authorizer
from gateway_api.security.quota_feed import QuotaFollower
from gateway_api.security.quotas import Quotas
from gateway_api.security.ratelimit import RateLimiter
from gateway_api.security.signing import ForwardSigner
from gateway_api.stats import TrafficStats
from gateway_api.statship import StatsShipper
from gateway_api.topology import Topology, load_topology
from gateway_api.transport.h2_client import H2Client
from gateway_api.transport.http_client import HttpClient
from gateway_api.upstreams.discovery import Discovery
from gateway_api.upstreams.ejections import EjectionBus
from gateway_api.upstreams.health import HealthChecker
from gateway_api.upstreams.pools import RetryBudget, Upstreams
from gateway_api.upstreams.region_sources import RegionSources
from gateway_api.upstreams.regions import RegionResolver

logger = logging.getLogger("gateway")


class Missing(enum.Enum):
    MISSING = "missing"


#: "Not known without a network call" (the region cache's miss).
MISSING: Final = Missing.MISSING
#: A C static in the compiled module (an imported name is a dict lookup per use).
_DEFAULT_TENANT: Final = DEFAULT_TENANT


class Security:
    """Who may call what: tokens, the embedded policy, rate limits and signatures."""

    def __init__(self, settings: Settings) -> None:
        keyring = settings.keyring()
        #: Signs the gateway's own calls (control plane, sv-region, sv-config).
        self.signer = ServiceSigner(
            settings.service_name, keyring, max_skew=settings.signature_max_skew
        )
        #: Signs every forwarded request (compiled; the same signatures as ``signer``).
        self.forward_signer = ForwardSigner(
            settings.service_name, keyring, sign_bodies=settings.sign_bodies
        )
        #: Per-route rate limits; counts shared through the backend once started.
        self.limiter = RateLimiter(None, sync_interval=settings.rate_limit_sync_interval)
        self.authn: Authenticator | None = None
        self.authz: Authorizer | None = None
        #: App, tenant, route and service quotas (auth-rbac's), enforced on Redis.
        self.quotas = Quotas(
            settings.redis_url,
            lease_ttl=settings.quota_lease_ttl,
            redis_timeout=settings.quota_redis_timeout,
            retry_redis_after=settings.quota_redis_retry,
            key_prefix=settings.quota_key_prefix,
        )
        self.quota_feed: QuotaFollower | None = None


class Routing:
    """The route table in force and what keeps it current (the file, or sv-config)."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        #: What any route table (file or sv-config release) may name.
        self.rules = RouteRules(
            frozenset(i.service for i in topology.instances), settings.reserved()
        )
        #: Replaced whole by a reload: a request already routed keeps its table.
        self.table: RouteTable = load_routes(settings.routes, self.rules)
        self.source: RouteWatcher | ConfigRoutes | None = None


class Egress:
    """The way out to the services: connections, retries, health, breakers, regions."""

    def __init__(self, settings: Settings) -> None:
        #: The forwarding core's keep-alive pools (the hot path; see http_client.py).
        self.client = HttpClient(idle_timeout=settings.upstream_idle_timeout)
        #: HTTP/2 to the gRPC pools (calls and their health probes), multiplexed.
        self.grpc_client = H2Client(
            max_connections=settings.grpc_max_connections,
            max_streams=settings.grpc_max_streams,
            idle_timeout=max(settings.upstream_idle_timeout, 30.0),
        )
        self.retry_budget = RetryBudget(ratio=settings.retry_budget_ratio)
        #: Upstream response headers never passed on (x-edge-instance unless exposed).
        self.response_dropped = (
            RESPONSE_DROPPED if settings.instance_header_exposed else RESPONSE_DROPPED_PRIVATE
        )
        #: aiohttp, for the gateway's own calls (health, control plane); made in start().
        self.session: aiohttp.ClientSession | None = None
        self.health: HealthChecker | None = None
        self.regions: RegionResolver | None = None
        #: Breakers opened in one worker open in the others (through the backend).
        self.ejections: EjectionBus | None = None
        #: Pools that follow etcd or EndpointSlices (None: the topology's, as read).
        self.discovery: Discovery | None = None
        #: Each region's source as sv-region says (None: settings only, or no sv-region).
        self.region_sources: RegionSources | None = None


class Gateway:
    """The gateway's shared state, built from injected :class:`Settings` (read once, by
    the entry point) and the topology file; network resources are made in :meth:`start`.

    Four groups, one per layer it draws on: :attr:`routing`, :attr:`security`,
    :attr:`upstreams` (the pools) and :attr:`egress` (connections and what watches them).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topology = load_topology(settings.topology)
        self.routing = Routing(settings, topology)
        self.security = Security(settings)
        self.upstreams = Upstreams(topology)
        self.egress = Egress(settings)
        self.backend: Backend | None = None
        #: This worker's traffic counters (merged across workers by the admin listener).
        self.metrics = GatewayMetrics()
        #: This worker's traffic per tenant, app and route (None: switched off), and what
        #: ships it to sv-log (made by the entry point, :mod:`gateway_api.serving`).
        self.stats: TrafficStats | None = (
            TrafficStats(settings.stats_max_keys) if settings.stats_enabled else None
        )
        self.stats_shipper: StatsShipper | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self.egress.session is not None, "gateway not started"
        return self.egress.session

    @property
    def health(self) -> HealthChecker:
        assert self.egress.health is not None, "gateway not started"
        return self.egress.health

    async def start(self, backend: Backend | None = None) -> None:
        """Open the forwarding session and start background work; ``backend`` carries events."""
        logger.info("gateway code", extra={"native": native.status})
        self.backend = backend
        await self._start_shared_state(backend)
        session = self.egress.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=60),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )
        await self._start_egress(session, backend)
        await self._start_routing()
        await self._start_control_plane(session, backend)

    async def _start_shared_state(self, backend: Backend | None) -> None:
        limiter = self.security.limiter
        limiter.backend = backend if self.settings.rate_limit_shared else None
        await limiter.start()
        if backend is not None:
            self.egress.ejections = EjectionBus(self.upstreams, backend)
            await self.egress.ejections.start()

    async def _start_egress(self, session: aiohttp.ClientSession, backend: Backend | None) -> None:
        settings = self.settings
        health = self.egress.health = HealthChecker(
            self.upstreams,
            session,
            interval=settings.health_interval,
            timeout=settings.health_timeout,
            healthy_threshold=settings.healthy_threshold,
            unhealthy_threshold=settings.unhealthy_threshold,
            grpc_client=self.egress.grpc_client,
            grpc_pools=lambda: self.routing.table.grpc_services,
        )
        await health.probe_all()
        health.start()
        await self._start_discovery(health)
        self.egress.regions = RegionResolver(
            pool=self.upstreams.pool("sv-region", None),
            session=session,
            signer=self.security.signer,
            backend=backend,
            ttl=settings.region_cache_ttl,
        )

    async def _start_discovery(self, health: HealthChecker) -> None:
        settings = self.settings
        ejections = self.egress.ejections
        discovery = Discovery(
            self.upstreams,
            default=settings.pool_source(),
            regions=settings.region_sources(),
            opener=lambda spec, region: open_source(
                spec, etcd_url=settings.etcd_url, region=region
            ),
            probe=health.probe,
            on_join=ejections.adopt if ejections is not None else None,
            on_leave=ejections.forget if ejections is not None else None,
            start_wait=settings.discovery_start_wait,
        )
        await discovery.start()
        directory = self.upstreams.pool("sv-region", None)
        if settings.discovery_follow_regions and directory is not None:
            assert self.egress.session is not None
            self.egress.region_sources = RegionSources(
                discovery,
                pool=directory,
                session=self.egress.session,
                signer=self.security.signer,
                backend=self.backend,
                refresh=settings.discovery_regions_refresh,
            )
            await self.egress.region_sources.start()
            self.egress.discovery = discovery
        elif discovery.active:
            self.egress.discovery = discovery

    async def _start_routing(self) -> None:
        if self.settings.routes_source:
            config = ConfigRoutes(self, self.settings.routes_source)
            self.routing.source = config
            await config.start()
        else:
            watcher = RouteWatcher(self, self.settings.routes)
            self.routing.source = watcher
            watcher.start()

    async def _start_control_plane(
        self, session: aiohttp.ClientSession, backend: Backend | None
    ) -> None:
        assert self.egress.regions is not None
        await self.egress.regions.start()
        security, settings = self.security, self.settings
        topology = self.upstreams.topology
        security.authn = Authenticator.for_gateway(
            topology, security.signer, settings.authn, backend=backend
        )
        await security.authn.start(session)
        security.authz = Authorizer.for_gateway(
            topology, security.signer, settings.authz, backend=backend
        )
        await security.authz.start(session)
        security.quota_feed = QuotaFollower(
            security.quotas,
            security.authz.source,
            backend=backend,
            channel=settings.quota_channel,
            poll_interval=settings.quota_poll_interval,
        )
        await security.quota_feed.start(session)

    async def stop(self) -> None:
        security, egress = self.security, self.egress
        await security.limiter.stop()
        parts = (
            egress.region_sources,
            egress.discovery,
            egress.ejections,
            security.quota_feed,
            security.authz,
            security.authn,
            egress.regions,
        )
        for part in parts:
            if part is not None:
                await part.stop()
        await security.quotas.close()
        if self.routing.source is not None:
            await self.routing.source.stop()
        if egress.health is not None:
            await egress.health.stop()
        if egress.session is not None:
            await egress.session.close()
        egress.client.close()
        egress.grpc_client.close()

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Identity:
        """The verified caller of a non-public route, or a 401 problem."""
        authn = self.security.authn
        if authn is None:
            raise Unauthorized("the gateway is starting", headers={"WWW-Authenticate": "Bearer"})
        return await authn.authenticate(scope)

    def authorize(self, identity: Identity, permission: Permission | None) -> None:
        """Allow the call or raise a 403 problem: auth-rbac's policy, embedded (authz.py).
        A route without a permission (``access = "authenticated"``) allows any caller."""
        if permission is None:
            return
        authz = self.security.authz
        if authz is None:
            raise PolicyUnavailable("the gateway is starting", headers={"Retry-After": "1"})
        # A decision already made allows without leaving compiled code; anything else
        # (not decided yet, a denial, no policy) goes through the authorizer.
        # Keyed by the caller's domain too: a role in one tenant grants nothing in another.
        # (Authorizer.domain_of, inlined: authz is not compiled, a call into it is not free.)
        tenant = identity.tenant
        domain = authz.domain if tenant == _DEFAULT_TENANT else tenant
        key = (domain, identity.user_id, permission.obj, permission.act)
        if authz.decisions.get(key) is not True:
            authz.authorize(identity, permission)

    def cached_region(self, route: Route, identity: Identity | None) -> str | Missing | None:
        """:meth:`region_for` when it needs no I/O, else :data:`MISSING`."""
        if route.scope != "regional":
            return None
        if identity is None:
            return self.settings.default_region
        regions = self.egress.regions
        if regions is None:
            return identity.region
        region = regions.cached(identity.user_id)
        return MISSING if region is None else region

    async def region_for(self, route: Route, identity: Identity | None) -> str | None:
        """The region whose instances serve this request (None for global services)."""
        region = self.cached_region(route, identity)
        if region is not MISSING:
            return region
        assert self.egress.regions is not None
        assert identity is not None
        return await self.egress.regions.region_of(identity)

    def discovery_status(self) -> dict[str, object]:
        """Where the pools come from, per region, and whether that view is ``stale``."""
        discovery = self.egress.discovery
        if discovery is None:
            return {"default": "static", "stale": False, "sources": {}, "regions": {}}
        status = discovery.status()
        if self.egress.region_sources is not None:
            status["directory"] = self.egress.region_sources.status()
        return status

    def gateway_nodes(self) -> list[dict[str, object]]:
        """The gateway nodes registered (this one included when it registers)."""
        discovery = self.egress.discovery
        nodes = discovery.gateways() if discovery is not None else []
        for node in nodes:
            node["self"] = node.get("instance") == self.settings.instance_id
        return nodes

    def cluster(self) -> dict[str, object]:
        pools = list(self.upstreams.pools.values())
        table = self.routing.table
        return {
            "gateway": {
                "instance": self.settings.instance_id,
                "public": f"http://{self.settings.host}:{self.settings.port}",
                "admin": f"http://{self.settings.admin_host}:{self.settings.admin_port}",
            },
            "routes": {"source": table.source, "count": len(table.routes)},
            "rate_limits": self.security.limiter.snapshot(),
            "quotas": self.security.quotas.snapshot(),
            "regions": list(
                dict.fromkeys(
                    [*self.upstreams.topology.regions, *(p.region for p in pools if p.region)]
                )
            ),
            "discovery": self.discovery_status(),
            "gateways": self.gateway_nodes(),
            "services": [p.snapshot() for p in pools],
            "totals": {
                "instances": sum(len(p.instances) for p in pools),
                "healthy": sum(1 for p in pools for i in p.instances if i.healthy),
            },
        }
