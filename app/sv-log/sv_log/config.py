"""Settings of sv-log, read from ``SV_LOG_*`` variables (or ``EDGE_*`` for shared ones)."""

from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings

KIB = 1024
MIB = 1024 * KIB


class Settings(ServiceSettings):
    """``SV_LOG_DATABASE_URL`` may also be a ``mongodb://`` URL (the MongoDB store)."""

    model_config = SettingsConfigDict(env_prefix="SV_LOG_", env_file=".env", extra="ignore")

    service_name: ClassVar[str] = "sv-log"
    port: int = 7105

    # Intake limits: a batch over any of them is refused whole with 413.
    max_body_bytes: int = Field(4 * MIB, ge=1)
    max_batch_bytes: int = Field(8 * MIB, ge=1)
    max_batch_records: int = Field(5000, ge=1)
    max_record_bytes: int = Field(32 * KIB, ge=256)

    # Retention: records older than this many days are deleted, per service.
    retention_days: int = Field(14, ge=1)
    retention_days_by_service: dict[str, int] = Field(default_factory=dict)
    retention_interval: float = Field(3600.0, gt=0)

    # Traffic statistics (gateway minute rows): how long each step is kept, and limits.
    stats_minute_retention_hours: int = Field(48, ge=1)
    stats_hour_retention_days: int = Field(90, ge=1)
    stats_day_retention_days: int = Field(730, ge=1)
    #: A batch key is remembered this long: a resend within it is never counted twice.
    stats_batch_key_days: int = Field(7, ge=1)
    stats_max_batch_rows: int = Field(20_000, ge=1)
    #: The most points one series may have (``(to - from) / step``).
    stats_max_points: int = Field(2000, ge=1)

    # Live tail over server-sent events.
    tail_heartbeat: float = Field(10.0, gt=0)
    tail_queue: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _own_logs_stay_in_process(self) -> "Settings":
        # sv-log stores its own records directly (see main.py): shipping them over HTTP
        # to itself would log each intake request, ship that line, and loop forever.
        self.log_url = None
        for service, days in self.retention_days_by_service.items():
            if days < 1:
                raise ValueError(f"retention for {service!r} must be at least one day")
        return self

    @property
    def uses_mongodb(self) -> bool:
        url = self.database_url or ""
        return url.startswith(("mongodb://", "mongodb+srv://"))
