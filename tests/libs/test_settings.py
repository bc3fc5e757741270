from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from edgelib.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: ClassVar[str] = "demo"
    port: int = 7999
    api_key: SecretStr = SecretStr("dev-api-key")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EDGE_PROFILE", "EDGE_SERVICE_SECRET", "EDGE_DATABASE_URL", "DEMO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_local_profile_accepts_development_defaults() -> None:
    settings = DemoSettings()
    assert settings.profile == "local"
    assert settings.instance_id == "demo-7999"


@pytest.mark.parametrize("profile", ["dev", "test", "prod"])
def test_other_profiles_refuse_a_default_secret(
    monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    monkeypatch.setenv("EDGE_PROFILE", profile)
    with pytest.raises(ValidationError, match="service_secret still has its development default"):
        DemoSettings()


def test_prod_refuses_a_service_specific_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_PROFILE", "prod")
    monkeypatch.setenv("EDGE_SERVICE_SECRET", "a-real-secret")
    with pytest.raises(ValidationError, match="api_key"):
        DemoSettings()
    monkeypatch.setenv("DEMO_API_KEY", "also-real")
    assert DemoSettings().profile == "prod"


def test_shared_value_comes_from_edge_prefix_and_service_prefix_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGE_DATABASE_URL", "postgresql+asyncpg://shared/db")
    assert DemoSettings().database_url == "postgresql+asyncpg://shared/db"
    monkeypatch.setenv("DEMO_DATABASE_URL", "sqlite+aiosqlite:///own.db")
    assert DemoSettings().database_url == "sqlite+aiosqlite:///own.db"


def test_edge_prefix_does_not_reach_service_own_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_PORT", "1234")
    assert DemoSettings().port == 7999
