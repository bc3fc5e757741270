"""Settings of sv-money, read from ``SV_MONEY_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_MONEY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-money"
    port: int = 7120
