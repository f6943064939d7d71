"""Redirect throughput: our durable redirect against a bare Starlette 302, same server settings.

Run:  .venv/bin/python tests/bench/redirect_bench.py [--seconds 3] [--rounds 6] [--workers 1]
      [--db sqlite,postgresql] [--modes close,keepalive,varied]
Needs wrk (Debian package `wrk`). Rounds are interleaved (bare, ours, bare, ours) so that the
machine's mood affects both alike. After each run of ours it counts the stored clicks and
compares them with the 302s wrk received: every acknowledged click must be stored (a few more
may be stored than received: requests in flight when wrk stops were answered but not counted).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from acquisition import channels, links  # noqa: E402
from acquisition.config import Settings  # noqa: E402
from acquisition.db import connect, migrate  # noqa: E402
from acquisition.models import Click  # noqa: E402
from tests.live_server import free_port  # noqa: E402

SECRET = "bench-secret-key-0123456789"
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) found = 0 end
function response(status, headers, body) if status == 302 then found = found + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("found") end
  io.write(string.format("FOUND302 %d\\n", total))
end
"""
# "varied": every click brings a user agent never seen before, as in-app browsers (which write
# device, locale and build into theirs) make common in real traffic; the worst case for the
# per-user-agent caches of the visitor classification.
VARIED = """
math.randomseed(os.time())
local agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
  .. "(KHTML, like Gecko) Mobile/15E148 Instagram 312.0.0.37.%d (iPhone14,5; iOS 17_1_2; "
  .. "en_US; en; scale=3.00; 1170x2532; %d)"
function request()
  local ua = string.format(agent, math.random(1, 999), math.random(1e8, 9e8))
  return wrk.format(nil, nil, {["User-Agent"] = ua})
end
"""


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def start(
    app: str, port: int, workers: int, env: dict[str, str], factory: bool = True
) -> subprocess.Popen[bytes]:
    """`app` is a factory (ours: each worker builds its app) unless `factory` is False."""
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    if factory:
        cmd.append("--factory")
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def wrk(
    url: str,
    seconds: int,
    connections: int,
    script: Path,
    close: bool,
    headers: tuple[str, ...] = (f"User-Agent: {PHONE}",),
) -> dict[str, float]:
    """Load `url`; the script's done() prints FOUND<anything> <n>: the answers it counted."""
    sent = [*headers, *(["Connection: close"] if close else [])]
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            *(arg for header in sent for arg in ("-H", header)),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    found = int(re.search(r"FOUND\S* (\d+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": _ms(pct["50"]),
        "p99": _ms(pct["99"]),
        "found": found,
        "errors": 0 if errors is None else sum(int(n) for n in re.findall(r"\d+", errors.group(1))),
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def server_env(url: str, spool: Path, **more: str) -> dict[str, str]:
    """What a server of ours is started with: its database, and a spool folder of the run's
    own (never the checkout's)."""
    return {
        "ACQUISITION_DATABASE_URL": url,
        "ACQUISITION_SECRET_KEY": SECRET,
        "ACQUISITION_SPOOL_DIR": str(spool),
        **more,
    }


def prepare(database_url: str) -> str:
    settings = Settings(database_url=database_url, secret_key=SECRET)
    db = connect(settings)
    migrate(db.engine)
    with db.writer.begin() as session:
        channel = channels.create(
            session, channels.parse({"messenger": "telegram", "handle": "shop_bot"})
        )
        link = links.create(session, links.parse({"channels": [channel.id], "source": "bench"}))
        code = link.code
    db.dispose()
    return code


def stored(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Click.__table__)).scalar_one()
    engine.dispose()
    return int(n)


def settled(url: str, before: int, acked: int) -> tuple[int, float]:
    """Clicks stored since `before` once the drain has caught up, and how long after the load
    that took. Clicks reach the database a moment after their 302 (the spool drains in
    batches, and on SQLite waits while the rollup refresher writes), so a count taken at once
    would report the backlog as lost: wait until every acknowledged click is there, or until
    the count has stopped growing for 10 s (then the missing ones are lost)."""
    began = time.monotonic()
    last, changed = -1, began
    while True:
        saved = stored(url) - before
        now = time.monotonic()
        if saved >= acked or now - changed > 10:
            return saved, now - began
        if saved != last:
            last, changed = saved, now
        time.sleep(0.2)


def fresh_database(kind: str, postgres: str, tmp: Path, name: str = "bench") -> str:
    """The URL of a new, empty database: a file in `tmp`, or `acq_<name>` on the server."""
    if kind == "sqlite":
        return f"sqlite:///{tmp}/{name}.db"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS acq_{name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE acq_{name}"))
    admin.dispose()
    return postgres.rsplit("/", 1)[0] + f"/acq_{name}"


def scripts(tmp: Path) -> Path | None:
    """wrk's script that counts the 302s (its `varied` twin beside it); None without wrk."""
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return None
    script = tmp / "count.lua"
    script.write_text(LUA)
    (tmp / "varied.lua").write_text(LUA + VARIED)
    return script


def bench_database(name: str, args: argparse.Namespace, script: Path, tmp: Path) -> list[str]:
    url = fresh_database(name, args.postgres, tmp)
    code = prepare(url)
    env = server_env(url, tmp / f"spool-{name}")
    bare_port, ours_port = free_port(), free_port()
    bare = start("tests.bench.bare_app:app", bare_port, args.workers, {}, factory=False)
    ours = start("acquisition.web.app:create_app_from_env", ours_port, args.workers, env)
    lines = []
    try:
        for mode in args.modes.split(","):
            lines += run_mode(name, mode, code, url, bare_port, ours_port, args, script)
    finally:
        stop(bare)
        stop(ours)
    return lines


def run_mode(
    name: str,
    mode: str,
    code: str,
    url: str,
    bare_port: int,
    ours_port: int,
    args: argparse.Namespace,
    script: Path,
) -> list[str]:
    close = mode == "close"
    if mode == "varied":
        script = script.with_name("varied.lua")
    bare_url, ours_url = (f"http://127.0.0.1:{port}/{code}" for port in (bare_port, ours_port))
    wrk(ours_url, 2, args.connections, script, close)  # warm up
    wrk(bare_url, 2, args.connections, script, close)
    before = stored(url)
    results: dict[str, list[dict[str, float]]] = {"bare": [], "ours": []}
    acked = 0
    for _ in range(args.rounds):
        results["bare"].append(wrk(bare_url, args.seconds, args.connections, script, close))
        run = wrk(ours_url, args.seconds, args.connections, script, close)
        results["ours"].append(run)
        acked += int(run["found"])
    saved, lag = settled(url, before, acked)
    label = f"{name:10} {mode:9}"
    lines = []
    for kind in ("bare", "ours"):
        runs = results[kind]
        rps = sum(r["rps"] for r in runs) / len(runs)
        p50 = sum(r["p50"] for r in runs) / len(runs)
        p99 = max(r["p99"] for r in runs)
        lines.append(f"{label} {kind:5} {rps:9.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:8.2f} ms")
    ratio = sum(r["rps"] for r in results["ours"]) / sum(r["rps"] for r in results["bare"])
    # Each round's own ratio (ours against the bare run just before it) shows how far the
    # machine's drift moves the figure within one run; their median is what it moves least.
    each = [o["rps"] / b["rps"] for b, o in zip(results["bare"], results["ours"], strict=True)]
    rounds = " ".join(f"{r:.2f}" for r in each)
    median = statistics.median(each)
    lost = max(0, acked - saved)
    lines.append(
        f"{label} ratio ours/bare = {ratio:.2f} (rounds {rounds}; median {median:.2f})   "
        f"302s received {acked}   "
        f"clicks stored {saved} (all in the database {lag:.1f} s after the load)   lost {lost}"
    )
    if lost:
        lines.append(f"{label} FAILED: {lost} acknowledged clicks are missing")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    # Short rounds, many of them: a shared machine's speed drifts within seconds, and a bare round
    # and ours next to it should see the same machine.
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument(
        "--modes",
        default="close,keepalive",
        help="close: a new connection per request, as real clicks arrive; "
        "keepalive: one connection reused; varied: keep-alive, every click with a user agent "
        "never seen before",
    )
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = scripts(tmp)
        if script is None:
            return 2
        lines = []
        for name in args.db.split(","):
            lines += bench_database(name.strip(), args, script, tmp)
    print(
        f"workers={args.workers} connections={args.connections} "
        f"seconds={args.seconds}x{args.rounds}"
    )
    print("\n".join(lines))
    return 1 if any("FAILED" in line for line in lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())
