"""Retention removes exactly the records older than their service's number of days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sv_log.config import Settings
from sv_log.retention import RetentionPolicy
from tests.sv_log.conftest import open_sv_log, query, record, ship

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


async def test_retention_deletes_only_what_is_old_enough_per_service(
    log_settings: Settings,
) -> None:
    settings = log_settings.model_copy(
        update={"retention_days": 14, "retention_days_by_service": {"gateway-api": 3}}
    )
    async with open_sv_log(settings) as (app, client):
        batch = [
            record("user-old", ts=days_ago(15), service="sv-user"),
            record("user-edge-kept", ts=days_ago(13.99), service="sv-user"),
            record("user-new", ts=days_ago(1), service="sv-user"),
            record("gw-old", ts=days_ago(3.01), service="gateway-api"),
            record("gw-kept", ts=days_ago(2.99), service="gateway-api"),
            record("money-10d-kept", ts=days_ago(10), service="sv-money"),
            record("money-old", ts=days_ago(30), service="sv-money"),
        ]
        assert (await ship(client, batch)).status_code == 202
        deleted = await app.state.retention.run_once(now=NOW)
        assert deleted == 3
        page = await query(client, service=["sv-user", "gateway-api", "sv-money"], order="asc")
        assert sorted(i["message"] for i in page["items"]) == [
            "gw-kept",
            "money-10d-kept",
            "user-edge-kept",
            "user-new",
        ]
        # A second round finds nothing more to do.
        assert await app.state.retention.run_once(now=NOW) == 0


def test_policy_plans_one_purge_per_override_and_one_for_the_rest() -> None:
    policy = RetentionPolicy(14, {"gateway-api": 3, "audit": 365})
    plans = policy.cutoffs(NOW)
    assert plans == [
        (NOW - timedelta(days=365), ("audit",), ()),
        (NOW - timedelta(days=3), ("gateway-api",), ()),
        (NOW - timedelta(days=14), (), ("audit", "gateway-api")),
    ]


def test_retention_of_less_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        Settings(retention_days_by_service={"x": 0})
