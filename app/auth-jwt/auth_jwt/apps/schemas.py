"""Bodies of the apps API and of the OAuth2 token endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TENANT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$"
#: Seconds an old secret keeps working after a rotation: at most a week.
MAX_OVERLAP = 7 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppIn(_Body):
    name: str = Field(min_length=1, max_length=128)
    #: The app's tenant; the caller's own when left out (a tenant's admin can name only it).
    tenant: str | None = Field(default=None, pattern=TENANT_PATTERN)


class AppUpdate(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    disabled: bool | None = None


class SecretRotation(_Body):
    #: How long the secrets issued before keep working (0: stop at once).
    overlap_seconds: int = Field(default=3600, ge=0, le=MAX_OVERLAP)


class App(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str
    tenant: str
    name: str
    disabled: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class AppWithSecret(App):
    """An app with a secret: the only time the secret is shown."""

    client_secret: str = Field(description="Shown once; only its hash is stored.")


class RotatedSecret(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; only its hash is stored.")
    #: Until when the secrets issued before this one keep working.
    previous_secrets_expire_at: datetime


class AppList(BaseModel):
    items: list[App]


class AccessToken(BaseModel):
    """A successful token response (RFC 6749 §5.1); no refresh token for this grant."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class OAuthError(BaseModel):
    """An error response of the token endpoint (RFC 6749 §5.2)."""

    error: Literal[
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    ]
    error_description: str | None = None
