"""Settings of auth-jwt, read from ``AUTH_JWT_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from edgelib.forwarded import DEFAULT_TRUSTED_PROXIES
from edgelib.settings import ServiceSettings

DEV_KEY_PASSPHRASE = "local-dev-key-passphrase-change-me"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTH_JWT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    service_name: ClassVar[str] = "auth-jwt"
    port: int = 7102

    # Tokens. The gateway verifies with the same issuer and audience.
    issuer: str = "edge-auth"
    audience: str = "edge"
    access_ttl: int = Field(default=300, ge=30, le=3600)
    #: A refresh token unused this long expires (seconds).
    refresh_ttl: int = Field(default=14 * 86400, ge=60)
    #: A session ends this long after its login, however often it is refreshed.
    session_max_age: int = Field(default=30 * 86400, ge=60)

    # Signing keys.
    signing_alg: Literal["ES256", "EdDSA"] = "ES256"
    #: Private keys are stored encrypted with this passphrase.
    key_passphrase: SecretStr = SecretStr(DEV_KEY_PASSPHRASE)
    #: A new key signs once the current one is this old (seconds); 0 turns it off.
    key_rotation_interval: float = Field(default=7 * 86400, ge=0)
    #: How often the rotation schedule and clean-up run (seconds).
    maintenance_interval: float = Field(default=60.0, gt=0)
    #: How long this instance trusts its copy of the key set before re-reading it.
    key_reload_interval: float = Field(default=5.0, gt=0)

    # Peers (comma-separated base URLs).
    sv_region_url: str = "http://127.0.0.1:7101"
    #: auth-rbac, which gives the bootstrap admin ``admin_role``.
    auth_rbac_url: str = "http://127.0.0.1:7103"
    admin_role: str = "admin"
    #: sv-user of each region (JSON object): ``{"east": "http://127.0.0.1:7201,..."}``.
    sv_user_urls: dict[str, str] = Field(default_factory=lambda: {"east": "http://127.0.0.1:7110"})
    peer_timeout: float = 5.0
    #: sv-notice of each region (JSON object), told of sign-ins on a new client type.
    notice_urls: dict[str, str] = Field(default_factory=dict)

    # Brute-force protection (Keycloak-style): failures are counted per account and
    # client address pair, so failures from elsewhere never lock a user out.
    #: Failures of one account from one address before waits start.
    lockout_failures: int = Field(default=5, ge=1)
    #: The first wait; each further failure of that pair doubles it, up to ``lockout_max``.
    lockout_base: float = Field(default=5.0, gt=0)
    lockout_max: float = Field(default=900.0, gt=0)
    #: A failure count is forgotten after this long without a failure (seconds).
    lockout_window: float = Field(default=900.0, gt=0)
    #: Failures from one address, over any accounts, that lock the address (doubling waits).
    lockout_address_failures: int = Field(default=20, ge=1)
    #: Failures of one account from all addresses within the window that pause it for
    #: ``lockout_account_wait`` seconds, except from addresses it signed in from lately.
    lockout_account_failures: int = Field(default=50, ge=1)
    lockout_account_wait: float = Field(default=60.0, gt=0)
    #: How long an address that signed in to an account stays exempt from its pause.
    lockout_known_address_ttl: float = Field(default=30 * 86400.0, gt=0)

    # Request rate limits per client address and per account (0 turns one off).
    login_address_limit: int = Field(default=60, ge=0)
    login_address_window: float = Field(default=60.0, gt=0)
    refresh_address_limit: int = Field(default=120, ge=0)
    refresh_address_window: float = Field(default=60.0, gt=0)
    refresh_account_limit: int = Field(default=30, ge=0)
    refresh_account_window: float = Field(default=60.0, gt=0)

    # The login lane (auth_jwt.sessions.admission): logins in progress at once in this
    # process (0: no lane), and how many more may wait for a place before 503.
    login_concurrency: int = Field(default=8, ge=0, le=1024)
    login_queue: int = Field(default=64, ge=0, le=100_000)

    #: Peers whose X-Forwarded-For is believed (CIDR ranges, comma-separated): the
    #: gateway's addresses. From any other peer the connecting address is the client.
    trusted_proxies: str = DEFAULT_TRUSTED_PROXIES
    #: Which entry from the end of X-Forwarded-For names the client (the gateway's: 1).
    trusted_proxy_hops: int = Field(default=1, ge=0)

    #: Backend pub/sub channel announcing revoked sessions to gateways.
    revocation_channel: str = "edge:auth:revocations"

    # The bootstrap administrator.
    admin_username: str = Field(
        default="admin",
        validation_alias=AliasChoices(
            "AUTH_JWT_ADMIN_USERNAME", "EDGE_ADMIN_USERNAME", "admin_username"
        ),
    )
    admin_region: str = "east"
    admin_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "AUTH_JWT_ADMIN_PASSWORD", "EDGE_ADMIN_PASSWORD", "admin_password"
        ),
    )


def url_list(value: str) -> list[str]:
    """Base URLs from a comma-separated setting."""
    return [u.strip() for u in value.split(",") if u.strip()]
