"""Settings of auth-jwt, read from ``AUTH_JWT_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_JWT_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "auth-jwt"
    port: int = 7102
