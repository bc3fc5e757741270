"""Settings of auth-rbac, read from ``AUTH_RBAC_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_RBAC_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "auth-rbac"
    port: int = 7103

    #: Seconds between checks of the policy version row (the fallback to pub/sub).
    poll_interval: float = Field(default=0.5, gt=0, le=10)
