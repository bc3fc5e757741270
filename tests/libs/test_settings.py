from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from edgelib.keyring import Keyring, KeyringError
from edgelib.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore")
    service_name: ClassVar[str] = "demo"
    port: int = 7999
    api_key: SecretStr = SecretStr("dev-api-key")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "EDGE_PROFILE",
        "EDGE_SERVICE_SECRET",
        "EDGE_SERVICE_KEYS",
        "EDGE_SERVICE_KEYS_FILE",
        "EDGE_DATABASE_URL",
        "DEMO_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_local_profile_accepts_development_defaults() -> None:
    settings = DemoSettings()
    assert settings.profile == "local"
    assert settings.instance_id == "demo-7999"


@pytest.mark.parametrize("profile", ["dev", "test", "prod"])
def test_other_profiles_refuse_to_run_without_a_service_keyring(
    monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    monkeypatch.setenv("EDGE_PROFILE", profile)
    with pytest.raises(ValidationError, match="service_keys or service_keys_file"):
        DemoSettings()
    # Not even with a root secret: a service never holds the root outside local.
    monkeypatch.setenv("EDGE_SERVICE_SECRET", "a-real-root")
    with pytest.raises(ValidationError, match="service_keys or service_keys_file"):
        DemoSettings()


def _ring(service: str) -> str:
    return Keyring.derived(
        "root", service, destinations={"sv-log"}, callers={"gateway-api"}, kids=["k1"],
        signing_kid="k1",
    ).to_json()  # fmt: skip


def test_prod_refuses_a_service_specific_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_PROFILE", "prod")
    monkeypatch.setenv("EDGE_SERVICE_KEYS", _ring("demo"))
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


def test_the_keyring_comes_from_its_file_and_must_be_this_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "demo.json"
    path.write_text(_ring("demo"))
    monkeypatch.setenv("EDGE_SERVICE_KEYS_FILE", str(path))
    ring = DemoSettings().keyring()
    assert ring.service == "demo"
    assert ring.signing_key("sv-log")[0] == "k1"
    assert ring.verifying_key("gateway-api", "k1") is not None
    assert ring.verifying_key("sv-user", "k1") is None
    path.write_text(_ring("sv-user"))
    with pytest.raises(KeyringError, match="not 'demo'"):
        DemoSettings().keyring()


PLACEHOLDERS = [
    "CHANGE-ME",
    "changeme",
    "Change_Me",
    "",
    "   ",
    "replace-me-before-deploy",
    "<your-secret>",
    "${EDGE_SERVICE_SECRET}",
    "xxxxxxxx",
    "secret",
    "TODO",
    "local-dev-service-secret-change-me",
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
@pytest.mark.parametrize("profile", ["dev", "test", "prod"])
def test_other_profiles_refuse_a_placeholder_secret(
    monkeypatch: pytest.MonkeyPatch, profile: str, value: str
) -> None:
    monkeypatch.setenv("EDGE_PROFILE", profile)
    monkeypatch.setenv("EDGE_SERVICE_KEYS", _ring("demo"))
    monkeypatch.setenv("DEMO_API_KEY", "a-real-api-key")
    monkeypatch.setenv("EDGE_SERVICE_SECRET", value)
    with pytest.raises(ValidationError, match="service_secret"):
        DemoSettings()
    monkeypatch.setenv("EDGE_SERVICE_SECRET", "9c1f-real-secret-from-the-vault")
    monkeypatch.setenv("DEMO_API_KEY", value)
    with pytest.raises(ValidationError, match="api_key"):
        DemoSettings()


def test_the_local_profile_still_accepts_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_SERVICE_SECRET", "CHANGE-ME")
    assert DemoSettings().service_secret.get_secret_value() == "CHANGE-ME"


def test_a_placeholder_password_in_a_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_PROFILE", "prod")
    monkeypatch.setenv("EDGE_SERVICE_KEYS", _ring("demo"))
    monkeypatch.setenv("EDGE_SERVICE_SECRET", "9c1f-real-secret-from-the-vault")
    monkeypatch.setenv("DEMO_API_KEY", "a-real-api-key")
    monkeypatch.setenv("EDGE_DATABASE_URL", "postgresql+asyncpg://edge:CHANGE-ME@db:5432/edge")
    with pytest.raises(ValidationError, match="database_url carries a placeholder password"):
        DemoSettings()
    monkeypatch.setenv("EDGE_DATABASE_URL", "postgresql+asyncpg://edge:s3cr3t-r4nd0m@db:5432/edge")
    assert DemoSettings().profile == "prod"


def test_placeholder_detection_spares_real_secrets() -> None:
    from edgelib.settings import is_placeholder

    for real in ("a-real-secret", "hunter2-but-long", "Zm9vYmFyYmF6cXV4", "9f8a7c6b5d4e"):
        assert not is_placeholder(real), real
