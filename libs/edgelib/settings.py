"""Settings base shared by every service.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix``
(``SV_MONEY_``, ``GATEWAY_`` ...). A few platform-wide values may also come from
``EDGE_*`` variables, so one ``EDGE_DATABASE_URL`` can point a whole stack at
PostgreSQL while a per-service variable still wins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from edgelib.keyring import Keyring, KeyringError

Profile = Literal["local", "dev", "test", "prod"]

#: Values that may come from ``EDGE_<NAME>`` when the service's own variable is unset.
SHARED_FIELDS = frozenset(
    {
        "profile",
        "database_url",
        "redis_url",
        "service_secret",
        "service_keys",
        "service_keys_file",
        "signature_max_skew",
        "auth_rbac_url",
        "permission_cache_ttl",
        "log_level",
        "log_json",
        "var_dir",
        "log_url",
        "log_ship_queue",
        "discovery",
        "etcd_url",
        "discovery_prefix",
        "discovery_ttl",
        "discovery_drain_delay",
        "zone",
    }
)

DEV_SERVICE_SECRET = "local-dev-service-secret-change-me"


class InsecureSettingsError(ValueError):
    """A secret still holds its development default outside the local profile."""


class _SharedEnvSource(EnvSettingsSource):
    """Reads ``EDGE_<NAME>`` for the platform-wide fields only."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        return {k: v for k, v in data.items() if k in SHARED_FIELDS}


class ServiceSettings(BaseSettings):
    """Settings every service has; subclass and set ``env_prefix``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    #: Service name, for logs, metrics and signatures; set by each subclass.
    service_name: ClassVar[str] = "service"

    profile: Profile = "local"
    instance_id: str = ""
    region: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str | None = None
    database_schema: str | None = None
    migrate_on_start: bool = False
    redis_url: str = "memory://"
    #: The root the local profile derives every service key from when no ring is given
    #: (the development root when unset). Outside local a service never holds a root.
    service_secret: SecretStr | None = None
    #: This service's keyring (JSON, ``edgelib.keyring``), inline or as a file; one of
    #: them is required outside the local profile.
    service_keys: SecretStr | None = None
    service_keys_file: Path | None = None
    #: How far a signed request's timestamp may be from now; nonces are kept twice this.
    signature_max_skew: float = 30.0
    #: auth-rbac, which services ask about their own admin endpoints' permissions.
    auth_rbac_url: str = "http://127.0.0.1:7103"
    #: How long a service keeps one permission decision (seconds).
    permission_cache_ttl: float = 1.0

    log_level: str = "INFO"
    log_json: bool = True
    #: sv-log's base URL; when set, this service's log records are shipped there too.
    log_url: str | None = None
    #: Bound of the shipping queue; records beyond it are dropped and counted.
    log_ship_queue: int = 10_000
    var_dir: Path = Path("var")

    #: ``static``: the instance is only in the topology file; ``etcd``: it also registers
    #: itself at ``etcd_url`` under a lease (edgelib.discovery, doc/discovery.md).
    discovery: Literal["static", "etcd"] = "static"
    etcd_url: str = "http://127.0.0.1:2379"
    discovery_prefix: str = "/edge/services"
    #: The registration lease: a crashed instance is gone from etcd after this (seconds).
    discovery_ttl: int = Field(default=10, ge=2, le=3600)
    #: On a graceful stop, the time between deregistering and closing the listener, for
    #: watchers (the gateway) to stop sending new requests here (seconds).
    discovery_drain_delay: float = Field(default=1.0, ge=0, le=60)
    #: The URL registered for this instance (default ``http://<host>:<port>``).
    advertise_url: str | None = None
    discovery_weight: int = Field(default=1, ge=1, le=1000)
    zone: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = _SharedEnvSource(settings_cls, env_prefix="EDGE_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> ServiceSettings:
        if not self.instance_id:
            suffix = f"-{self.region}" if self.region else ""
            self.instance_id = f"{self.service_name}{suffix}-{self.port}"
        if self.profile == "local":
            return self
        if self.service_keys is None and self.service_keys_file is None:
            raise InsecureSettingsError(
                f"service_keys or service_keys_file must be set for profile {self.profile!r}"
            )
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if _is_default_secret(value, field):
                raise InsecureSettingsError(
                    f"{name} still has its development default; set it for profile {self.profile!r}"
                )
            if isinstance(value, SecretStr) and is_placeholder(value.get_secret_value()):
                raise InsecureSettingsError(
                    f"{name} holds a placeholder, not a secret; set it for profile {self.profile!r}"
                )
            if (
                isinstance(value, str)
                and name.endswith("_url")
                and _url_password_placeholder(value)
            ):
                raise InsecureSettingsError(
                    f"{name} carries a placeholder password; set it for profile {self.profile!r}"
                )
        return self

    @property
    def is_local(self) -> bool:
        return self.profile == "local"

    def keyring(self) -> Keyring:
        """This service's keys: the ring file or inline ring, else (local) the dev root."""
        if self.service_keys_file is not None:
            return Keyring.load(self.service_keys_file, service=self.service_name)
        if self.service_keys is not None:
            return Keyring.from_json(
                self.service_keys.get_secret_value(), service=self.service_name
            )
        if not self.is_local:
            raise KeyringError("no service keyring outside the local profile")
        root = self.service_secret.get_secret_value() if self.service_secret else DEV_SERVICE_SECRET
        return Keyring.from_root(root, self.service_name)


#: Values people leave in a secret until they mean to replace it (compared without case).
_PLACEHOLDERS = frozenset(
    {"secret", "password", "passwd", "changeit", "default", "example", "dummy", "none", "null",
     "todo", "fixme", "tbd"}
)  # fmt: skip
#: Words that mark a value as a placeholder wherever they appear (letters and digits only);
#: long enough that a random secret holds one by chance about once in 10^11.
_PLACEHOLDER_MARKERS = ("changeme", "replaceme", "placeholder", "yoursecret")
_TEMPLATE_LIKE = re.compile(r"<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|x+|\*+|\.+|-+|0+")
#: The local profile's built-in secrets: never valid elsewhere, whichever field holds them.
KNOWN_LOCAL_SECRETS = frozenset({DEV_SERVICE_SECRET})


def is_placeholder(value: str) -> bool:
    """True for an empty value, ``CHANGE-ME`` and kin, ``<your-secret>``, ``xxxx``, or a
    known local default: values that must never protect anything outside the local profile."""
    text = value.strip().lower()
    if not text or text in _PLACEHOLDERS or value in KNOWN_LOCAL_SECRETS:
        return True
    if _TEMPLATE_LIKE.fullmatch(text):
        return True
    letters = re.sub(r"[^a-z0-9]", "", text)
    return any(marker in letters for marker in _PLACEHOLDER_MARKERS)


def _url_password_placeholder(url: str) -> bool:
    try:
        password = urlsplit(url).password
    except ValueError:
        return False
    return password is not None and is_placeholder(unquote(password))


def _is_default_secret(value: object, field: FieldInfo) -> bool:
    if not isinstance(value, SecretStr):
        return False
    default = field.default
    if isinstance(default, SecretStr):
        return value.get_secret_value() == default.get_secret_value()
    return not value.get_secret_value()


_OwnSettings = TypeVar("_OwnSettings", bound=ServiceSettings)


def own_settings(config: ServiceSettings | None, cls: type[_OwnSettings]) -> _OwnSettings:
    """A service's own settings for its app factory: ``config`` when it is of the
    service's class (tests), else read from the environment; any other class is a bug."""
    settings = config if config is not None else cls()
    if not isinstance(settings, cls):
        raise TypeError(
            f"{cls.__module__.split('.')[0]} needs its own {cls.__name__}, "
            f"not {type(settings).__qualname__}"
        )
    return settings
