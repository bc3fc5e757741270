"""Settings of sv-notice, read from ``SV_NOTICE_*`` variables (or ``EDGE_*`` for shared ones)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from edgelib.settings import InsecureSettingsError, ServiceSettings
from sv_notice.templates.renderer import RenderLimits


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SV_NOTICE_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-notice"
    port: int = 7130

    # Delivery queue.
    #: ``auto``: Redis Streams when ``redis_url`` is Redis, else the in-process queue.
    queue: Literal["auto", "memory", "redis"] = "auto"
    #: Prefix of this region's Redis keys; by default derived from the database it serves.
    queue_namespace: str | None = None
    #: Concurrent delivery tasks per instance.
    workers: int = Field(default=4, ge=1, le=64)
    #: Attempts per channel before a delivery is dead-lettered.
    max_attempts: int = Field(default=6, ge=1, le=50)
    #: First retry delay (seconds); it doubles per attempt, with jitter, up to ``retry_max``.
    retry_base: float = Field(default=2.0, gt=0)
    retry_max: float = Field(default=600.0, gt=0)
    #: How long a worker owns a delivery it is attempting (seconds).
    lease_seconds: float = Field(default=60.0, gt=0)
    #: How often the database outbox is swept for due deliveries (seconds).
    sweep_interval: float = Field(default=2.0, gt=0)

    # Email over SMTP; without a host the email channel is off.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_from: str = "Edge <no-reply@edge.localhost>"

    # Webhooks.
    webhook_timeout: float = Field(default=5.0, gt=0)
    #: Allow webhook URLs on loopback or private addresses. Default: only in the local
    #: profile; ``true`` is refused at start outside the local and test profiles.
    webhook_allow_private: bool | None = None

    # Realtime push.
    realtime_heartbeat: float = Field(default=15.0, gt=0)
    #: Notices buffered per connected client before it counts as lagging.
    realtime_client_queue: int = Field(default=100, ge=1)

    default_locale: str = "en"

    # Template rendering (in worker processes: templates/renderer.py).
    #: Seconds one render may take before its worker is killed (422 render-failed).
    render_timeout: float = Field(default=1.0, gt=0, le=60)
    #: Characters each rendered field (title, body) may have.
    render_max_output: int = Field(default=20_000, ge=1, le=1_000_000)
    #: Address-space cap of a render worker, in MiB (0: none).
    render_memory_mb: int = Field(default=512, ge=0)
    #: Render worker processes per instance, started on first use.
    render_workers: int = Field(default=2, ge=1, le=16)

    # Peers (sends for users of another region are handed to that region's sv-notice).
    #: sv-region's base URLs (comma-separated); without it every send stays in this region.
    sv_region_url: str | None = None
    #: sv-notice of each region (JSON object): ``{"west": "http://127.0.0.1:7321"}``.
    peers: dict[str, str] = Field(default_factory=dict)
    peer_timeout: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _private_webhooks_only_locally(self) -> Settings:
        if self.webhook_allow_private and self.profile not in ("local", "test"):
            raise InsecureSettingsError(
                f"webhook_allow_private lets users aim webhooks at internal addresses; "
                f"it is refused for profile {self.profile!r}"
            )
        return self

    @property
    def render_limits(self) -> RenderLimits:
        return RenderLimits(
            timeout=self.render_timeout,
            max_output=self.render_max_output,
            memory=self.render_memory_mb * 1024 * 1024,
            workers=self.render_workers,
        )

    @property
    def uses_redis_queue(self) -> bool:
        if self.queue == "auto":
            return self.redis_url.startswith(("redis://", "rediss://", "unix://"))
        return self.queue == "redis"

    @property
    def private_webhooks_allowed(self) -> bool:
        if self.webhook_allow_private is None:
            return self.is_local
        return self.webhook_allow_private
