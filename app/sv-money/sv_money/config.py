"""Settings of sv-money, read from ``SV_MONEY_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_MONEY_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-money"
    port: int = 7120
    #: The gRPC API's port (``edge.money.v1.Wallet``, protos/); None or 0: no gRPC listener.
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    #: The region whose wallets this instance keeps.
    region: str | None = "east"

    #: sv-region, whose directory maps a username to its user id and region
    #: (comma-separated base URLs).
    sv_region_url: str = "http://127.0.0.1:7101"
    #: sv-money of every region (JSON object of comma-separated base URLs), for
    #: cross-region transfers, top-ups and audits:
    #: ``{"east": "http://127.0.0.1:7211", "west": "http://127.0.0.1:7311"}``.
    peers: dict[str, str] = Field(default_factory=dict)
    #: sv-notice of every region (same shape), told of transfers received; empty: none.
    notice_urls: dict[str, str] = Field(default_factory=dict)
    #: Seconds one call to another service may take.
    peer_timeout: float = Field(default=2.0, gt=0)
    #: Seconds a username -> (user id, region) answer is reused.
    directory_cache_ttl: float = Field(default=30.0, ge=0)

    #: Seconds an Idempotency-Key is remembered: a retry within this window finds the
    #: first request's result; afterwards the key may be used again.
    idempotency_ttl: float = Field(default=7 * 86400.0, gt=0)

    #: Fee on transfers between users, in basis points of the amount (paid by the payer).
    transfer_fee_bps: int = Field(default=0, ge=0, le=10_000)
    #: Largest amount of one movement, in minor units.
    max_amount: int = Field(default=10**15, gt=0, le=10**15)

    #: Lifetime of a hold when the request does not say, and the longest allowed (seconds).
    hold_default_ttl: float = Field(default=3600.0, gt=0)
    hold_max_ttl: float = Field(default=7 * 86400.0, gt=0)
    #: How often expired holds are looked for (seconds).
    hold_sweep_interval: float = Field(default=1.0, gt=0)

    #: How often the outbox of cross-region transfers is looked at (seconds).
    outbox_interval: float = Field(default=0.5, gt=0)
    #: After this many seconds without a definite answer from the payee's region, the
    #: payer's region stops offering the credit and asks that region to decide instead
    #: (credited already, or refused for good), so a transfer never stays open forever.
    outbox_abort_after: float = Field(default=60.0, gt=0)
    #: Seconds the audit waits for another region's answers (bulk reads).
    audit_timeout: float = Field(default=30.0, gt=0)
    #: A cross-region transfer still in flight after this many seconds is reported by the
    #: audit as stuck.
    audit_inflight_grace: float = Field(default=300.0, gt=0)
    #: How often this region audits itself in the background (seconds; 0: only on
    #: request). The result is the ``edge_sv_money_audit_ok`` gauge the alerts watch.
    audit_interval: float = Field(default=300.0, ge=0)


def url_list(value: str) -> list[str]:
    """Base URLs from a comma-separated setting."""
    return [u.strip() for u in value.split(",") if u.strip()]
