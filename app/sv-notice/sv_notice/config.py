"""Settings of sv-notice, read from ``SV_NOTICE_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_NOTICE_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-notice"
    port: int = 7130
