"""Settings of sv-log, read from ``SV_LOG_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_LOG_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-log"
    port: int = 7105
