from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from acquisition.config import ConfigError, Settings


def test_defaults_use_a_sqlite_file_and_keep_a_generated_secret(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    first = Settings.from_env({"ACQUISITION_DATABASE_URL": url})
    second = Settings.from_env({"ACQUISITION_DATABASE_URL": url})
    assert first.secret_key == second.secret_key
    assert len(first.secret_key) >= 32
    assert (tmp_path / "a.db.secret").stat().st_mode & 0o077 == 0


def test_plain_postgres_urls_get_the_psycopg_driver() -> None:
    settings = Settings.from_env(
        {"ACQUISITION_DATABASE_URL": "postgresql://u@db/x", "ACQUISITION_SECRET_KEY": "k" * 32}
    )
    assert settings.database_url == "postgresql+psycopg://u@db/x"


def test_production_requires_a_secret_key() -> None:
    with pytest.raises(ConfigError, match="ACQUISITION_SECRET_KEY"):
        Settings.from_env(
            {"ACQUISITION_ENV": "production", "ACQUISITION_BASE_URL": "https://go.example.com"}
        )


def test_production_requires_a_base_url() -> None:
    with pytest.raises(ConfigError, match="ACQUISITION_BASE_URL"):
        Settings.from_env({"ACQUISITION_ENV": "production", "ACQUISITION_SECRET_KEY": "k" * 32})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ACQUISITION_DATABASE_URL", "mysql://x"),
        ("ACQUISITION_BASE_URL", "go.example.com"),
        ("ACQUISITION_BASE_URL", "https://go.example.com/path?x=1"),
        ("ACQUISITION_TRUSTED_PROXIES", "10.0.0.1, not-an-ip"),
        ("ACQUISITION_MAX_BODY_BYTES", "lots"),
        ("ACQUISITION_POOL_TIMEOUT", "-1"),
        ("ACQUISITION_RATE_LIMIT_API", "many per hour"),
        ("ACQUISITION_ENV", "staging"),
        ("ACQUISITION_SECRET_KEY", "short"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    env = {"ACQUISITION_SECRET_KEY": "k" * 32, variable: value}
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


def test_trusted_proxies_accept_addresses_and_networks() -> None:
    settings = Settings.from_env(
        {"ACQUISITION_SECRET_KEY": "k" * 32, "ACQUISITION_TRUSTED_PROXIES": "10.0.0.0/8, ::1"}
    )
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )


def test_relay_private_networks_are_read_and_a_bad_one_is_named() -> None:
    base = {"ACQUISITION_SECRET_KEY": "k" * 32}
    settings = Settings.from_env({**base, "ACQUISITION_RELAY_PRIVATE_NETWORKS": "10.8.0.0/16"})
    assert settings.relay_private_networks == (ipaddress.ip_network("10.8.0.0/16"),)
    assert Settings.from_env(base).relay_private_networks == ()  # public addresses only
    with pytest.raises(ConfigError, match="ACQUISITION_RELAY_PRIVATE_NETWORKS"):
        Settings.from_env({**base, "ACQUISITION_RELAY_PRIVATE_NETWORKS": "intranet"})


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    from dataclasses import fields

    for field in fields(Settings):
        assert f"ACQUISITION_{field.name.upper()}" in readme, field.name
