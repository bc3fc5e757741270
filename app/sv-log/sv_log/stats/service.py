"""The rules of traffic statistics: who sees which tenant, ranges and steps, the series."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import TypeAdapter, ValidationError

from edgelib.identity import DEFAULT_TENANT, Identity
from sv_log.exceptions import BatchTooLarge, InvalidRecords
from sv_log.service import read_json_batch
from sv_log.stats.exceptions import InvalidStatsQuery, OutsideTenant
from sv_log.stats.schemas import (
    BUCKETS,
    LATENCY_BOUNDS_MS,
    STEP_SECONDS,
    Counts,
    Day,
    Point,
    Series,
    StatsAccepted,
    StatsOut,
    StatsQueryParams,
    StatsRow,
    TodayOut,
)

_ROWS = TypeAdapter(list[StatsRow])
_ERRORS_SHOWN = 20
#: A query's default range, in steps, when ``from`` is left out.
DEFAULT_STEPS = 60


class StatsStore(Protocol):
    async def add(self, rows: Sequence[StatsRow], *, batch_key: str, now: int) -> bool: ...

    async def sums(
        self,
        step: str,
        *,
        start: int,
        end: int,
        tenant: str | None,
        app: str | None,
        route: str | None,
        group_by: str | None,
    ) -> list[tuple[int, str, str, list[int]]]: ...

    async def delete_older(self, step: str, cutoff: int) -> int: ...

    async def forget_batches(self, cutoff: int) -> int: ...


@dataclass(frozen=True)
class StatsRetention:
    """How long each step's data is kept (settings ``SV_LOG_STATS_*``)."""

    minute_hours: int = 48
    hour_days: int = 90
    day_days: int = 730
    batch_key_days: int = 7

    def cutoffs(self, now: float) -> dict[str, int]:
        return {
            "minute": int(now) - self.minute_hours * 3600,
            "hour": int(now) - self.hour_days * 86400,
            "day": int(now) - self.day_days * 86400,
        }


def _counts(sums: dict[str, list[int]]) -> Counts:
    """Counts from the per-class sums ``[requests, latency_us, b0..b13]``."""
    out = Counts()
    histogram = [0] * BUCKETS
    latency_us = 0
    observed = 0
    for cls, values in sums.items():
        out.status_classes[cls] = out.status_classes.get(cls, 0) + values[0]
        out.requests += values[0]
        latency_us += values[1]
        for i in range(BUCKETS):
            histogram[i] += values[2 + i]
        observed += sum(values[2:])
    out.errors_4xx = out.status_classes.get("4xx", 0)
    out.errors_5xx = out.status_classes.get("5xx", 0)
    out.latency_ms_sum = latency_us / 1000
    out.latency_ms_avg = round(latency_us / 1000 / observed, 3) if observed else None
    out.latency_histogram = histogram
    return out


def _add(into: dict[str, list[int]], cls: str, values: list[int]) -> None:
    have = into.get(cls)
    if have is None:
        into[cls] = list(values)
    else:
        for i, v in enumerate(values):
            have[i] += v


class StatsService:
    """Intake of the gateways' minute rows, and the time series over them."""

    def __init__(
        self,
        store: StatsStore,
        *,
        max_batch_bytes: int,
        max_batch_rows: int,
        max_points: int,
        retention: StatsRetention,
    ) -> None:
        self.store = store
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_rows = max_batch_rows
        self.max_points = max_points
        self.retention = retention

    # -- intake -------------------------------------------------------------------------

    def decode(
        self, body: bytes, *, content_type: str | None, content_encoding: str | None
    ) -> list[StatsRow]:
        """A whole batch, checked before anything is added; the problem that fits if not."""
        raw = read_json_batch(
            body,
            content_type=content_type,
            content_encoding=content_encoding,
            max_bytes=self.max_batch_bytes,
            key="rows",
        )
        if len(raw) > self.max_batch_rows:
            raise BatchTooLarge(
                f"{len(raw)} rows; at most {self.max_batch_rows} per batch",
                limit=self.max_batch_rows,
            )
        try:
            return _ROWS.validate_python(raw)
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)[:_ERRORS_SHOWN]
            ]
            raise InvalidRecords(
                f"{exc.error_count()} problems in the batch", errors=errors
            ) from None

    async def ingest(self, rows: Sequence[StatsRow], *, batch_key: str) -> StatsAccepted:
        """Add a batch exactly once (the key is stored with the counts, in one transaction)."""
        if not await self.store.add(rows, batch_key=batch_key, now=int(time.time())):
            return StatsAccepted(rows=0, duplicate=True)
        return StatsAccepted(rows=len(rows))

    # -- who sees what --------------------------------------------------------------------

    @staticmethod
    def visible_tenant(caller: Identity, tenant: str | None) -> str | None:
        """The tenant a caller may ask about: any (None: all) for the platform's own
        callers, only their active tenant for a tenant's callers."""
        if caller.tenant == DEFAULT_TENANT:
            return tenant
        if tenant is not None and tenant != caller.tenant:
            raise OutsideTenant(f"you act in tenant {caller.tenant!r}; its statistics only")
        return caller.tenant

    # -- queries ------------------------------------------------------------------------

    async def series(self, caller: Identity, params: StatsQueryParams) -> StatsOut:
        """Dense time series over [from, to), one per group, with totals."""
        tenant = self.visible_tenant(caller, params.tenant)
        width = STEP_SECONDS[params.step]
        now = datetime.now(UTC)
        to = params.to or now
        end = -(-int(to.timestamp()) // width) * width  # up to the step the end falls in
        if params.from_ is not None:
            start = int(params.from_.timestamp()) // width * width
        else:
            start = end - DEFAULT_STEPS * width
        if start >= end:
            raise InvalidStatsQuery("from must be before to")
        if (end - start) // width > self.max_points:
            raise InvalidStatsQuery(
                f"{(end - start) // width} {params.step}s asked; at most {self.max_points}: "
                "narrow the range or take a longer step"
            )
        rows = await self.store.sums(
            params.step,
            start=start,
            end=end,
            tenant=tenant,
            app=params.app,
            route=params.route,
            group_by=params.group_by,
        )
        groups: dict[str, dict[int, dict[str, list[int]]]] = {}
        for period, group, cls, values in rows:
            if params.group_by == "status_class":
                group = cls
            _add(groups.setdefault(group, {}).setdefault(period, {}), cls, values)
        if not groups and params.group_by is None:
            groups[""] = {}
        series = []
        for group, periods in sorted(groups.items()):
            total: dict[str, list[int]] = {}
            for by_class in periods.values():
                for cls, values in by_class.items():
                    _add(total, cls, values)
            points = [
                Point(
                    start=datetime.fromtimestamp(t, UTC),
                    **_counts(periods.get(t, {})).model_dump(),
                )
                for t in range(start, end, width)
            ]
            series.append(
                Series(
                    group={params.group_by: group} if params.group_by else {},
                    totals=_counts(total),
                    points=points,
                )
            )
        return StatsOut(
            tenant=tenant,
            app=params.app,
            route=params.route,
            step=params.step,
            from_=datetime.fromtimestamp(start, UTC),
            to=datetime.fromtimestamp(end, UTC),
            latency_bounds_ms=list(LATENCY_BOUNDS_MS),
            series=series,
        )

    async def today(
        self,
        caller: Identity,
        *,
        tenant: str | None,
        app: str | None,
        route: str | None,
        now: datetime | None = None,
    ) -> TodayOut:
        """Today so far (UTC, hour by hour) against yesterday, whole and to the same time."""
        tenant = self.visible_tenant(caller, tenant)
        now = now or datetime.now(UTC)
        midnight = int(now.timestamp()) // 86400 * 86400
        rows = await self.store.sums(
            "hour",
            start=midnight - 86400,
            end=midnight + 86400,
            tenant=tenant,
            app=app,
            route=route,
            group_by=None,
        )
        by_hour: dict[int, dict[str, list[int]]] = {}
        for period, _group, cls, values in rows:
            _add(by_hour.setdefault(period, {}), cls, values)
        # Yesterday "to the same time": its whole hours before now's hour, plus now's hour
        # of yesterday taken whole (hourly data cannot be cut finer).
        same_time_end = int(now.timestamp()) // 3600 * 3600 - 86400 + 3600

        def day(first: int, last: int) -> Day:
            total: dict[str, list[int]] = {}
            hours = []
            for t in range(first, last, 3600):
                for cls, values in by_hour.get(t, {}).items():
                    _add(total, cls, values)
                hours.append(
                    Point(
                        start=datetime.fromtimestamp(t, UTC),
                        **_counts(by_hour.get(t, {})).model_dump(),
                    )
                )
            return Day(
                date=datetime.fromtimestamp(first, UTC).date().isoformat(),
                totals=_counts(total),
                hours=hours,
            )

        same: dict[str, list[int]] = {}
        for t in range(midnight - 86400, same_time_end, 3600):
            for cls, values in by_hour.get(t, {}).items():
                _add(same, cls, values)
        today = day(midnight, midnight + 86400)
        same_time = _counts(same)
        return TodayOut(
            tenant=tenant,
            app=app,
            route=route,
            now=now,
            today=today,
            yesterday=day(midnight - 86400, midnight),
            yesterday_same_time=same_time,
            change_ratio=(
                round(today.totals.requests / same_time.requests, 4) if same_time.requests else None
            ),
        )

    # -- retention ------------------------------------------------------------------------

    async def purge(self, now: float | None = None) -> int:
        """Drop what each step keeps no longer, and old batch keys; how many rows went."""
        now = time.time() if now is None else now
        total = 0
        for step, cutoff in self.retention.cutoffs(now).items():
            total += await self.store.delete_older(step, cutoff)
        await self.store.forget_batches(int(now) - self.retention.batch_key_days * 86400)
        return total
