"""Widget beacon throughput: POST /w/{id}/e with one upsert+commit per beacon, against /healthz.

Run:  .venv/bin/python tests/bench/beacon_bench.py [--seconds 8] [--workers 2]
      [--connections 32] [--db sqlite,postgresql] [--keys 1]
Needs wrk (Debian package `wrk`). After each run it sums the stored counters and compares them
with the 204s wrk received: every acknowledged beacon must be counted. `--keys` spreads the
beacons over that many page paths (1 = every beacon updates the same counter row: the worst
case for row-lock contention).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from acquisition import channels, widgets  # noqa: E402
from acquisition.config import Settings  # noqa: E402
from acquisition.db import connect, migrate  # noqa: E402
from acquisition.models import WidgetEvent  # noqa: E402
from tests.bench.redirect_bench import SECRET, wrk  # noqa: E402
from tests.live_server import live_server  # noqa: E402

SITE = "https://shop.example"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HEADERS = (f"User-Agent: {CHROME}", f"Origin: {SITE}", "Content-Type: text/plain;charset=UTF-8")
LUA = """
local keys = %d
local n = 0
function init(args) found = 0 end
function request()
  n = n + 1
  local body = string.format(
    '{"t":"impression","page":"%s/p%%d","utm_source":"bench","utm_campaign":"spring"}', n %% keys)
  return wrk.format("POST", nil, nil, body)
end
function response(status, headers, body) if status == 204 then found = found + 1 end end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("found") end
  io.write(string.format("FOUND %%d\\n", total))
end
"""


def prepare(url: str) -> str:
    db = connect(Settings(database_url=url, secret_key=SECRET))
    migrate(db.engine)
    with db.writer.begin() as session:
        channel = channels.create(
            session, channels.parse({"messenger": "telegram", "handle": "shop_bot"})
        )
        widget = widgets.create(
            session, widgets.parse({"channels": [channel.id], "origins": [SITE]})
        )
        public_id = widget.public_id
    db.dispose()
    return public_id


def stored(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        total = conn.execute(select(func.coalesce(func.sum(WidgetEvent.count), 0))).scalar_one()
    engine.dispose()
    return int(total)


def bench(name: str, args: argparse.Namespace, tmp: Path) -> None:
    if name == "sqlite":
        url = f"sqlite:///{tmp}/bench.db"
    else:
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS acq_beacon_bench WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE acq_beacon_bench"))
        admin.dispose()
        url = args.postgres.rsplit("/", 1)[0] + "/acq_beacon_bench"
    public_id = prepare(url)
    script = tmp / "beacon.lua"
    script.write_text(LUA % (args.keys, SITE))
    env = {
        "ACQUISITION_DATABASE_URL": url,
        "ACQUISITION_SECRET_KEY": SECRET,
        "ACQUISITION_SPOOL_DIR": str(tmp / f"spool-{name}"),
    }
    with live_server(env, workers=args.workers, args=["--no-access-log"]) as server:
        beacon = f"{server.url}/w/{public_id}/e"
        health = tmp / "health.lua"
        health.write_text(
            "function init(args) found = 0 end\nfunction response(s) found = found + 1 end\n"
            "local t = {}\nfunction setup(th) table.insert(t, th) end\n"
            'function done() local n = 0 for _, x in ipairs(t) do n = n + x:get("found") end '
            'io.write(string.format("FOUND %d\\n", n)) end\n'
        )
        wrk(beacon, 2, args.connections, script, False, HEADERS)  # warm up
        before = stored(url)
        base = wrk(f"{server.url}/healthz", args.seconds, args.connections, health, False, HEADERS)
        ours = wrk(beacon, args.seconds, args.connections, script, False, HEADERS)
        after = stored(url)
    counted = after - before
    print(
        json.dumps(
            {
                "db": name,
                "workers": args.workers,
                "connections": args.connections,
                "keys": args.keys,
                "healthz_rps": round(base["rps"]),
                "beacon_rps": round(ours["rps"]),
                "ratio": round(ours["rps"] / base["rps"], 3),
                "beacon_p50_ms": ours["p50"],
                "beacon_p99_ms": ours["p99"],
                "acknowledged": int(ours["found"]),
                "counted": counted,
            }
        )
    )
    # Requests in flight when wrk stops are committed but not counted by wrk: counted >= acked.
    assert counted >= ours["found"], f"lost beacons: {ours['found']} acknowledged, {counted} stored"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keys", type=int, default=1)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.db.split(","):
            bench(name, args, Path(tmp))


if __name__ == "__main__":
    main()
