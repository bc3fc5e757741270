"""Settings of the gateway, read from ``GATEWAY_*`` variables (or ``EDGE_*`` shared ones)."""

from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

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
