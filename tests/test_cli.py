from __future__ import annotations

import pytest

from acquisition import apikeys
from acquisition.cli import main
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import ApiKey, Link
from tests.conftest import BASE_URL, SECRET, count
from tests.factories import make_channel


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> Database:
    monkeypatch.setenv("ACQUISITION_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ACQUISITION_BASE_URL", BASE_URL)
    monkeypatch.setenv("ACQUISITION_SECRET_KEY", SECRET)
    return db


def test_apikey_create_prints_a_working_key_as_its_last_line(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apikey", "create", "--name", "crm"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("acq_")
    with env.reader() as s:
        assert apikeys.verify(s, token).name == "crm"


def test_apikey_list_never_shows_secrets_and_revoke_stops_a_key(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["apikey", "create", "--name", "crm"])
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["apikey", "list"]) == 0
    listing = capsys.readouterr().out
    assert "crm" in listing and token not in listing
    assert main(["apikey", "revoke", token[:10]]) == 0
    with env.reader() as s:
        assert s.query(ApiKey).one().revoked_at is not None


def test_link_create_prints_the_short_url(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = make_channel(env)
    code = main(
        [
            "link",
            "create",
            "--channel",
            str(channel.id),
            "--campaign",
            "spring",
            "--placement",
            "Metro flyer B",
            "--placement-kind",
            "print",
        ]
    )
    assert code == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith(f"{BASE_URL}/")
    assert count(env, Link) == 1


def test_link_create_with_a_bad_field_says_which_and_stores_nothing(
    env: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = make_channel(env)
    assert main(["link", "create", "--channel", str(channel.id), "--slug", "api"]) == 1
    assert "reserved" in capsys.readouterr().err
    assert main(["link", "create", "--channel", "424242"]) == 1
    assert "no channel with id 424242" in capsys.readouterr().err
    assert count(env, Link) == 0


def test_stats_prints_a_table(env: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--group-by", "source"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("source\t")


def test_configuration_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACQUISITION_DATABASE_URL", "mysql://nope")
    assert main(["migrate"]) == 2
    assert "ACQUISITION_DATABASE_URL" in capsys.readouterr().err
