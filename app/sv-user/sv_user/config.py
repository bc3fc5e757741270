"""Settings of sv-user, read from ``SV_USER_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_USER_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-user"
    port: int = 7110
