"""Settings of sv-config, read from ``SV_CONFIG_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_CONFIG_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-config"
    port: int = 7104
