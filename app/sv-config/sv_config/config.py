"""Settings of sv-config, read from ``SV_CONFIG_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings

KIB = 1024


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_CONFIG_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-config"
    port: int = 7104

    #: Longest a watch (long poll) waits for a change before answering 304.
    watch_max_wait: float = Field(60.0, gt=0, le=300)
    #: How often each instance scans for release changes whose pub/sub message was lost.
    watch_fallback_interval: float = Field(2.0, gt=0)
    #: More services that may follow their configuration, besides the platform's own
    #: (comma-separated names: a deployment's own services outside deploy/services.toml).
    watch_callers: str = ""

    def extra_watch_callers(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.watch_callers.split(",") if n.strip())

    # Content limits: an edit or release over any of them is refused with 422.
    max_items: int = Field(1000, ge=1)
    max_value_bytes: int = Field(64 * KIB, ge=16)
    max_schema_bytes: int = Field(64 * KIB, ge=16)
    max_release_bytes: int = Field(1024 * KIB, ge=16)
