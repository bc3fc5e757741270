"""Settings of sv-region, read from ``SV_REGION_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_REGION_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-region"
    port: int = 7101

    #: Regions created on start when missing (JSON list), e.g. ``["east", "west"]``.
    regions: list[str] = Field(default_factory=lambda: ["east", "west"])
    #: Seconds after which an unconfirmed username reservation counts as abandoned.
    pending_ttl: float = 120.0
