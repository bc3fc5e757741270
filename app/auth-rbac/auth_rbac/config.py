"""Settings of auth-rbac, read from ``AUTH_RBAC_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings

#: Roles delegated to services by default (``service_roles``).
SERVICE_ROLES: dict[str, list[str]] = {"sv-user": ["user"], "auth-jwt": ["admin"]}


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_RBAC_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "auth-rbac"
    port: int = 7103

    #: The roles each service may assign over ``POST /internal/assignments``, in the
    #: default domain: sv-user gives new accounts ``user``, auth-jwt the bootstrap admin.
    service_roles: dict[str, list[str]] = Field(default_factory=lambda: dict(SERVICE_ROLES))

    #: Seconds between checks of the policy version row (the fallback to pub/sub).
    poll_interval: float = Field(default=0.5, gt=0, le=10)
