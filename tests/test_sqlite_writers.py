"""SQLite under concurrent writers: two processes, each with several threads, create channels
and links (single and batch) and follow links at once on one database file. Writers take the
lock at BEGIN (BEGIN IMMEDIATE) and wait for it (busy_timeout), so no "database is locked"
ever reaches a client: every request succeeds and every row is there."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from acquisition import apikeys
from acquisition.config import Settings
from acquisition.db import connect, migrate
from acquisition.models import Channel, Click, Link
from tests.conftest import BASE_URL, SECRET

THREADS = 4
ROUNDS = 12
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


def settings(path: Path, spool: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{path}",
        base_url=BASE_URL,
        secret_key=SECRET,
        spool_dir=str(spool),
        rate_limit_api="100000/minute",
    )


def writer_process(path: str, spool: str, token: str, worker: int, results: Any) -> None:
    """One process: an app of its own, THREADS threads writing through the API at once."""
    from acquisition.web.app import create_app

    app = create_app(settings(Path(path), Path(spool)))
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        client.headers["authorization"] = f"Bearer {token}"

        def work(thread: int) -> None:
            for n in range(ROUNDS):
                handle = f"w{worker}t{thread}n{n}_bot"
                r = client.post(
                    "/api/v1/channels", json={"messenger": "telegram", "handle": handle}
                )
                got = [f"channel {r.status_code}"]
                if r.status_code == 201:
                    cid = r.json()["id"]
                    one = client.post("/api/v1/links", json={"channels": [cid], "source": "t"})
                    got.append(f"link {one.status_code}")
                    many = client.post(
                        "/api/v1/links/batch",
                        json={"links": [{"channels": [cid], "content": str(i)} for i in range(5)]},
                    )
                    got.append(f"batch {many.status_code}")
                    if one.status_code == 201:
                        hit = client.get(f"/{one.json()['code']}", headers={"user-agent": PHONE})
                        got.append(f"click {hit.status_code}")
                    for text in (r.text, one.text, many.text):
                        if "locked" in text:
                            got.append("database is locked")
                with lock:
                    statuses.update(got)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert app.state.services.clicks.wait_drained(timeout=30)
    results.put(dict(statuses))


def test_two_processes_of_writers_never_see_database_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "writers.db"
    db = connect(settings(path, tmp_path / "spool"))
    migrate(db.engine)
    with db.writer.begin() as s:
        token = apikeys.create(s, "writers")[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=writer_process,
            args=(str(path), str(tmp_path / f"spool{w}"), token, w, results),
        )
        for w in range(2)
    ]
    for process in processes:
        process.start()
    totals: Counter[str] = Counter()
    for _ in processes:
        totals.update(results.get(timeout=120))
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    requests = 2 * THREADS * ROUNDS
    assert totals == {
        "channel 201": requests,
        "link 201": requests,
        "batch 201": requests,
        "click 302": requests,
    }, totals
    with db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Channel)) == requests
        assert s.scalar(select(func.count()).select_from(Link)) == requests * 6
        assert s.scalar(select(func.count()).select_from(Click)) == requests
    db.dispose()
    print(f"\nSQLite writers: 2 processes x {THREADS} threads, {requests * 4} requests, 0 locked")
