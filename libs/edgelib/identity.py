"""The verified caller identity the gateway passes to services.

The gateway verifies the access token, then forwards the caller as a compact
``x-edge-identity`` header covered by its service signature. Services accept it
only when that signature is valid and comes from the gateway, so a client cannot
forge an identity by sending the header itself (the gateway also strips it).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus, urlencode

GATEWAY_SERVICE = "gateway-api"
#: The tenant (Casbin domain) of a caller whose token names none: the platform's own.
DEFAULT_TENANT = "default"


class IdentityError(ValueError):
    """The identity header is malformed."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    username: str
    region: str
    session_id: str
    client_type: str
    #: The active tenant: the Casbin domain the caller's permissions are checked in.
    tenant: str = DEFAULT_TENANT
    #: The OAuth2 client id when the caller is an app (client credentials), else empty.
    app: str = ""

    def encode(self) -> str:
        fields = {
            "sub": self.user_id,
            "name": self.username,
            "region": self.region,
            "sid": self.session_id,
            "ct": self.client_type,
        }
        # Left out when they hold their defaults, so the usual header stays as it was.
        if self.tenant != DEFAULT_TENANT:
            fields["tenant"] = self.tenant
        if self.app:
            fields["app"] = self.app
        return urlencode(fields)

    @classmethod
    def decode(cls, value: str) -> Identity:
        try:
            fields = _form_fields(value)
            return cls(
                user_id=fields["sub"],
                username=fields["name"],
                region=fields["region"],
                session_id=fields["sid"],
                client_type=fields["ct"],
                tenant=fields.get("tenant") or DEFAULT_TENANT,
                app=fields.get("app", ""),
            )
        except (KeyError, ValueError) as exc:
            raise IdentityError("malformed identity header") from exc


def _form_fields(value: str) -> dict[str, str]:
    """``parse_qsl(value, keep_blank_values=True, strict_parsing=True)`` as a dict, the
    last of a repeated name winning, without its generic work: a service reads this
    header on every authenticated request, and it is mostly plain ASCII."""
    fields: dict[str, str] = {}
    if not value:
        return fields
    for pair in value.split("&"):
        name, equals, raw = pair.partition("=")
        if not equals:
            raise ValueError(f"bad identity field: {pair!r}")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        fields[name] = unquote_plus(raw) if "%" in raw or "+" in raw else raw
    return fields
