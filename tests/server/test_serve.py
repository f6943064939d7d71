"""The README's quick start, for real: `acquisition serve` on a fresh SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from tests.live_server import free_port

pytestmark = pytest.mark.server

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


def test_serve_migrates_a_fresh_database_and_keeps_clicks_through_a_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ACQUISITION_DATABASE_URL": f"sqlite:///{tmp_path}/acquisition.db",
        "ACQUISITION_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("ACQUISITION_SECRET_KEY", None)
    cli = [sys.executable, "-m", "acquisition"]
    server = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("the server did not come up")
        assert (tmp_path / "acquisition.db.secret").exists()
        created = subprocess.run(
            [*cli, "apikey", "create", "--name", "readme"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        key = created.stdout.strip().splitlines()[-1]
        auth = {"authorization": f"Bearer {key}"}
        channel = httpx.post(
            f"{base}/api/v1/channels",
            headers=auth,
            json={"messenger": "telegram", "handle": "shop_bot", "name": "Shop"},
        )
        assert channel.status_code == 201, channel.text
        link = httpx.post(
            f"{base}/api/v1/links",
            headers=auth,
            json={"channels": [channel.json()["id"]], "source": "readme"},
        )
        assert link.status_code == 201
        assert link.json()["url"].startswith(base)
        refs = []
        for _ in range(20):
            r = httpx.get(link.json()["url"], headers={"user-agent": PHONE})
            assert r.status_code == 302
            refs.append(r.headers["location"].rsplit("=", 1)[1])
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    engine = create_engine(env["ACQUISITION_DATABASE_URL"])
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT ref FROM clicks")).scalars())
    engine.dispose()
    assert set(refs) <= stored
