"""Settings of sv-user, read from ``SV_USER_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from edgelib.forwarded import DEFAULT_TRUSTED_PROXIES
from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_USER_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-user"
    port: int = 7110
    #: The region whose users this instance stores.
    region: str | None = "east"

    #: sv-region, which holds the username directory (comma-separated base URLs).
    sv_region_url: str = "http://127.0.0.1:7101"
    #: auth-jwt, told to end the other sessions after a password change.
    auth_jwt_url: str = "http://127.0.0.1:7102"
    #: auth-rbac, which gives every new account ``default_role`` (comma-separated URLs).
    auth_rbac_url: str = "http://127.0.0.1:7103"
    default_role: str = "user"
    #: sv-user of each region (JSON object of comma-separated base URLs), for
    #: registrations meant for another region: ``{"west": "http://127.0.0.1:7301"}``.
    region_peers: dict[str, str] = Field(default_factory=dict)
    peer_timeout: float = 5.0

    #: argon2id cost; the floors are OWASP's minimum (19 MiB, 2 iterations).
    password_memory_kib: int = Field(default=19456, ge=19456)
    password_iterations: int = Field(default=2, ge=2)
    password_parallelism: int = Field(default=1, ge=1)
    #: Threads hashing passwords at once (0: one per CPU), and how many more checks may
    #: wait for one; past that a login or registration is answered 503 with Retry-After.
    password_hash_workers: int = Field(default=0, ge=0)
    password_hash_queue: int = Field(default=64, ge=0)
    #: How much lower the hashing threads' CPU priority is (``nice``; 0 keeps it).
    password_hash_niceness: int = Field(default=10, ge=0, le=19)

    #: Names nobody may register (comma-separated), nor any case or look-alike variant
    #: of them; the bootstrap admin's name (``admin_username``) is added to them.
    reserved_usernames: str = "admin,root,administrator,system"
    #: The bootstrap admin's name, as auth-jwt is configured (``EDGE_ADMIN_USERNAME``).
    admin_username: str = Field(
        default="admin",
        validation_alias=AliasChoices(
            "SV_USER_ADMIN_USERNAME", "EDGE_ADMIN_USERNAME", "admin_username"
        ),
    )
    #: The only service allowed to create accounts with reserved names.
    bootstrap_caller: str = "auth-jwt"

    # Registration rate limits, counted on the shared backend (0 turns one off).
    register_address_limit: int = Field(default=30, ge=0)
    register_address_window: float = Field(default=600.0, gt=0)
    #: Attempts at one username (taken or not) from anywhere.
    register_username_limit: int = Field(default=5, ge=0)
    register_username_window: float = Field(default=600.0, gt=0)
    #: Seconds a registration (201, name taken, directory refusal) takes at the least,
    #: so a taken name is not told from a free one by its timing (0 turns it off).
    registration_min_seconds: float = Field(default=0.4, ge=0)

    #: Peers whose X-Forwarded-For is believed (CIDR ranges): the gateway's addresses.
    trusted_proxies: str = DEFAULT_TRUSTED_PROXIES
    trusted_proxy_hops: int = Field(default=1, ge=0)


def url_list(value: str) -> list[str]:
    """Base URLs from a comma-separated setting."""
    return [u.strip() for u in value.split(",") if u.strip()]
