"""Settings of the gateway, read from ``GATEWAY_*`` variables (or ``EDGE_*`` shared ones).

One :class:`Settings` is made at the entry point (``python -m gateway_api``, a test, a
benchmark) and handed to :class:`~gateway_api.gateway.Gateway`; nothing below reads the
environment again.
"""

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgelib.discovery import SourceSpec, parse_source
from edgelib.settings import ServiceSettings
from gateway_api.security.trusted_proxies import TrustedProxies, parse_networks
from gateway_api.transport.h2 import H2Limits
from gateway_api.transport.server import ClientLimits
from gateway_api.transport.tls import TlsFiles
from gateway_api.upstreams.discovery import parse_region_sources

PACKAGE_DIR = Path(__file__).parent


class AuthnSettings(BaseSettings):
    """The gateway's token settings (``GATEWAY_*``); issuer and audience match auth-jwt's."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    jwt_issuer: str = "edge-auth"
    jwt_audience: str = "edge"
    #: Accepted signature algorithms (comma-separated); only asymmetric ones are allowed.
    jwt_algorithms: str = "ES256,EdDSA"
    jwt_leeway: float = Field(default=5.0, ge=0, le=60)
    #: auth-jwt's base URLs (comma-separated); by default its instances in the topology.
    auth_jwt_url: str | None = None
    jwks_min_refetch: float = Field(default=5.0, ge=0)
    jwks_max_age: float = Field(default=300.0, gt=0)
    revocation_poll_interval: float = Field(default=0.5, gt=0)
    revocation_channel: str = "edge:auth:revocations"


class AuthzSettings(BaseSettings):
    """The gateway's authorization settings (``GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    #: auth-rbac's base URLs (comma-separated); by default its instances in the topology.
    auth_rbac_url: str | None = None
    #: The Casbin domain route permissions are checked in.
    authz_domain: str = "default"
    policy_poll_interval: float = Field(default=0.5, gt=0, le=10)
    policy_channel: str = "edge:rbac:policy"
    #: Decisions kept per policy version; the cache starts over when it is full.
    decision_cache_size: int = Field(default=100_000, ge=1)
    #: Seconds the gateway's start waits for a first policy before serving anyway.
    policy_start_wait: float = Field(default=3.0, ge=0)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "gateway-api"
    port: int = 7001
    admin_host: str = "127.0.0.1"
    admin_port: int = 7080
    #: Comma-separated addresses or CIDR networks of load balancers whose
    #: X-Forwarded-For is trusted (``10.0.0.0/8, 192.0.2.7``).
    trusted_proxies: str = ""

    topology: Path = Path("deploy/local/topology.toml")
    routes: Path = PACKAGE_DIR / "routes.toml"
    routes_source: str = ""  # "sv-config:<namespace>[@cluster]": follow it (routes_config.py)
    default_region: str = "east"
    #: Seconds a user's region stays cached (changes are also pushed by sv-region).
    region_cache_ttl: float = 60.0

    health_interval: float = 1.0
    health_timeout: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 2

    #: Idle keep-alive connections to upstreams are dropped after this many seconds
    #: (below the services' own keep-alive timeout, uvicorn's 5 s).
    upstream_idle_timeout: float = 4.0
    #: Seconds an idle client connection is kept open.
    keep_alive_timeout: float = Field(default=30.0, gt=0)

    # Bounds on hostile clients (server.ClientLimits); defaults after nginx and Envoy.
    #: Seconds from a request head's first byte to its end; then 408 (client_header_timeout).
    client_header_timeout: float = Field(default=60.0, gt=0)
    #: Seconds a request body may go without a byte; then 408 (client_body_timeout).
    client_body_timeout: float = Field(default=60.0, gt=0)
    #: Seconds a client may leave the gateway's writes unread; then it is dropped (send_timeout).
    send_timeout: float = Field(default=60.0, gt=0)
    #: Raw bytes of a request head; more is 431 (Envoy's max_request_headers_kb = 60).
    max_header_bytes: int = Field(default=60 * 1024, ge=1024, le=1024 * 1024)
    #: Header fields of a request, and trailer fields of a body; more is 431 (Envoy's 100).
    max_headers: int = Field(default=100, ge=8, le=1000)
    #: Requests of one connection parsed ahead of the one being answered.
    max_pipelined: int = Field(default=4, ge=1, le=64)
    #: Client connections per worker process (nginx's worker_connections); at the cap the
    #: longest-idle ones are closed to make room, else new ones are refused.
    max_connections: int = Field(default=4096, ge=1)
    #: Seconds a WebSocket tunnel may carry no byte either way (Envoy's stream idle timeout).
    websocket_idle_timeout: float = Field(default=300.0, gt=0)
    #: Seconds a WebSocket tunnel may last at most; clients reconnect after it.
    websocket_max_lifetime: float = Field(default=7200.0, gt=0)
    #: Path prefixes no route may claim (nor a route above them, such as ``/``).
    #: ``/internal`` is always reserved.
    reserved_prefixes: str = "/internal,/healthz,/readyz,/metrics"
    #: Pass the services' ``x-edge-instance`` response header on to clients (off: it
    #: names internal instances; the e2e stacks turn it on to see who answered).
    expose_instance: bool = False
    #: Worker processes serving the public port (SO_REUSEPORT); 1 runs a single process.
    workers: int = 1

    #: Seconds between a worker's rate-limit counts reaching the shared backend.
    rate_limit_sync_interval: float = 0.1
    #: Count rate limits in the backend (shared by workers and gateways); False: per process.
    rate_limit_shared: bool = True

    #: Seconds between polls of auth-rbac's quotas (the fallback to pub/sub).
    quota_poll_interval: float = Field(default=0.5, gt=0, le=10)
    quota_channel: str = "edge:rbac:quotas"
    #: Seconds a concurrency lease lives when a gateway never gives it back (a crash).
    quota_lease_ttl: float = Field(default=60.0, gt=0, le=86400)
    #: Seconds a quota's Redis call may take before the quota falls back (on_redis_down).
    quota_redis_timeout: float = Field(default=0.25, gt=0, le=5)
    #: Seconds quotas stay on their fallback after Redis failed, before trying it again.
    quota_redis_retry: float = Field(default=1.0, gt=0, le=60)
    #: Prefix of the quota counters' keys; on a Redis Cluster, a hash tag such as
    #: ``{edge-quota}:`` keeps one request's keys in one slot (one script touches them all).
    quota_key_prefix: str = Field(default="edge:quota:", min_length=1, max_length=64)

    #: Where the pools come from (doc/discovery.md): ``static`` (the topology file),
    #: ``etcd:/<prefix>`` or ``k8s:<namespace>``. Empty: ``etcd:<discovery_prefix>`` when
    #: ``EDGE_DISCOVERY=etcd``, else ``static``.
    discovery_source: str = ""
    #: Per-region sources that differ from that one: ``west=k8s:edge-west, north=static``.
    discovery_regions: str = ""
    #: Seconds the start waits for each source's first listing (then: the topology's
    #: pools, marked stale, until the source answers).
    discovery_start_wait: float = Field(default=2.0, ge=0, le=60)
    #: Follow sv-region's ``discovery`` value of each region (over ``discovery_regions``):
    #: read at start, on each ``edge.regions`` announcement and every
    #: ``discovery_regions_refresh`` seconds.
    discovery_follow_regions: bool = True
    discovery_regions_refresh: float = Field(default=30.0, ge=1, le=3600)

    #: Retries may add this share of the request rate (plus a small floor per second).
    retry_budget_ratio: float = 0.2

    # Traffic statistics per tenant, app, route and status class (gateway_api.stats).
    #: Count them and ship them to sv-log; off, nothing is counted.
    stats_enabled: bool = True
    #: Seconds between two shipments of a worker's counts (and between retries' start).
    stats_interval: float = Field(default=5.0, gt=0, le=300)
    #: sv-log's base URLs (comma-separated); by default its instances in the topology.
    stats_url: str | None = None
    #: Distinct (minute, tenant, app, route, class) keys per window before new ones are
    #: counted under tenant ``_overflow``.
    stats_max_keys: int = Field(default=50_000, ge=1)
    #: Rows waiting for sv-log before the oldest batch is dropped (and logged).
    stats_max_pending_rows: int = Field(default=200_000, ge=1)
    stats_batch_rows: int = Field(default=5000, ge=1, le=20_000)

    # The admin console (gateway_api/console, doc/console.md).
    #: Serve the console under ``/console`` on the admin listener.
    console_enabled: bool = True
    #: Also serve it under ``/admin`` on the public port (for admins; off by default).
    console_public: bool = False
    #: The platform's public API the console calls with the signed-in user's token;
    #: empty: this gateway's own public port on 127.0.0.1.
    console_platform_url: str = ""
    #: Seconds one call of the console to the platform may take.
    console_timeout: float = Field(default=5.0, gt=0, le=60)
    #: Console sessions held at once (the oldest idle one goes first past it).
    console_max_sessions: int = Field(default=1000, ge=1, le=100_000)
    #: Seconds a console session may stay unused before it ends.
    console_idle_timeout: float = Field(default=1800.0, ge=10, le=86400)
    #: Seconds a console session lasts at most (then sign in again).
    console_max_age: float = Field(default=12 * 3600.0, ge=60, le=7 * 86400)
    #: The client type the console signs in with (auth-jwt keeps one session per type).
    console_client_type: Literal["web", "app", "mini"] = "web"

    #: Token checks and the embedded policy (``GATEWAY_JWT_*``, ``GATEWAY_AUTH_*_URL``,
    #: ...): read with the rest, once, where the settings are made (the entry point).
    authn: AuthnSettings = Field(default_factory=AuthnSettings)
    authz: AuthzSettings = Field(default_factory=AuthzSettings)

    #: TLS on the public port (transport/tls.py): PEM files, reloaded when they change.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_check_interval: float = Field(default=5.0, gt=0, le=3600)

    #: HTTP/2 with prior knowledge (h2c) on the public port (transport/h2.py).
    http2: bool = True
    #: Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    h2_max_concurrent_streams: int = Field(default=100, ge=1, le=1000)
    #: Streams a client may reset per second before it is disconnected (rapid reset).
    h2_max_resets_per_second: int = Field(default=200, ge=10, le=100_000)

    #: gRPC to the upstreams (rpc/proxy.py, transport/h2_client.py): HTTP/2 connections
    #: per instance, and streams per connection (capped by what the instance allows).
    grpc_max_connections: int = Field(default=4, ge=1, le=64)
    grpc_max_streams: int = Field(default=100, ge=1, le=1000)

    #: TCP stream routes (``[[streams]]`` TOML, transport/streams.py), read at start;
    #: none when unset.
    streams: Path | None = None

    #: Buffer each forwarded body and sign its SHA-256; off, bodies stream unsigned
    #: (``UNSIGNED-PAYLOAD``). Cost measured in doc/decisions.md.
    sign_bodies: bool = False

    @model_validator(mode="after")
    def _tls_pair(self) -> "Settings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE, or neither")
        return self

    def tls(self) -> TlsFiles | None:
        """The public listener's TLS files (None: plain TCP)."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        return TlsFiles(
            self.tls_cert_file,
            self.tls_key_file,
            http2=self.http2,
            check_interval=self.tls_check_interval,
        )

    @field_validator("discovery_source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value.strip():
            parse_source(value.strip())
        return value.strip()

    @field_validator("discovery_regions")
    @classmethod
    def _region_sources(cls, value: str) -> str:
        parse_region_sources(value)
        return value

    def pool_source(self) -> SourceSpec:
        """The source the pools follow unless their region names another."""
        if self.discovery_source:
            return parse_source(self.discovery_source)
        if self.discovery == "etcd":
            return parse_source(f"etcd:{self.discovery_prefix}")
        return SourceSpec("static")

    def region_sources(self) -> dict[str, SourceSpec]:
        return parse_region_sources(self.discovery_regions)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # refuse a bad entry at start, not at the first request
        return value

    @property
    def instance_header_exposed(self) -> bool:
        """Whether clients see which instance answered (``x-edge-instance``)."""
        return self.expose_instance

    def reserved(self) -> tuple[str, ...]:
        """The reserved path prefixes, ``/internal`` first (and ``/admin`` when the console
        is served there: a route under it would never be reached)."""
        items = [p.strip().rstrip("/") for p in self.reserved_prefixes.split(",") if p.strip()]
        if self.console_public and self.console_enabled:
            items.append("/admin")
        return ("/internal", *dict.fromkeys(p for p in items if p and p != "/internal"))

    def trusted_peers(self) -> TrustedProxies:
        """The load balancers whose ``X-Forwarded-For`` the public server believes."""
        return TrustedProxies(self.trusted_proxies)

    def h2_limits(self) -> H2Limits:
        """The bounds on one HTTP/2 client connection (beyond the shared client limits)."""
        return H2Limits(self.h2_max_concurrent_streams, self.h2_max_resets_per_second)

    def client_limits(self) -> ClientLimits:
        """The public server's bounds on one client connection."""
        return ClientLimits(
            header_timeout=self.client_header_timeout,
            body_timeout=self.client_body_timeout,
            send_timeout=self.send_timeout,
            max_header_bytes=self.max_header_bytes,
            max_headers=self.max_headers,
            max_pipelined=self.max_pipelined,
            max_connections=self.max_connections,
        )
