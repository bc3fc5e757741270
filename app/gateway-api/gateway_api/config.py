"""Settings of the gateway, read from ``GATEWAY_*`` variables (or ``EDGE_*`` shared ones)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgelib.settings import ServiceSettings

PACKAGE_DIR = Path(__file__).parent


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "gateway-api"
    port: int = 7001
    admin_host: str = "127.0.0.1"
    admin_port: int = 7080
    #: Comma-separated addresses of load balancers whose X-Forwarded-For is trusted.
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
    keep_alive_timeout: float = 30.0
    #: Worker processes serving the public port (SO_REUSEPORT); 1 runs a single process.
    workers: int = 1

    #: Seconds between a worker's rate-limit counts reaching the shared backend.
    rate_limit_sync_interval: float = 0.1
    #: Count rate limits in the backend (shared by workers and gateways); False: per process.
    rate_limit_shared: bool = True

    #: Retries may add this share of the request rate (plus a small floor per second).
    retry_budget_ratio: float = 0.2


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
