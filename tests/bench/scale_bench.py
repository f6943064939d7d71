"""Scale out: redirect throughput with 1, 2 and 4 worker processes against PostgreSQL, in one
run, and proof that nothing acknowledged is lost at any width (stored clicks >= the 302s wrk
received, counted after each server drained on SIGTERM).

Run:  .venv/bin/python tests/bench/scale_bench.py [--workers 1,2,4] [--seconds 8]
      [--connections 64] [--mode close|keepalive] [--postgres URL]
Needs wrk (Debian package `wrk`). Each width gets a fresh server on the same database; the
load generator shares the machine, so on 2 cores the gain flattens past two workers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.redirect_bench import (  # noqa: E402
    free_port,
    fresh_database,
    prepare,
    scripts,
    server_env,
    start,
    stop,
    stored,
    wrk,
)


def run_width(
    workers: int, url: str, code: str, args: argparse.Namespace, script: Path, spool: Path
) -> dict[str, float]:
    env = server_env(url, spool, ACQUISITION_LINK_CACHE_SECONDS="60")
    port = free_port()
    proc = start("acquisition.web.app:create_app_from_env", port, workers, env)
    target = f"http://127.0.0.1:{port}/{code}"
    close = args.mode == "close"
    try:
        wrk(target, 2, args.connections, script, close)  # warm up every worker
        before = stored(url)
        result = wrk(target, args.seconds, args.connections, script, close)
    finally:
        stop(proc)  # SIGTERM: the workers drain their spools before exiting
    result["stored"] = stored(url) - before
    result["workers"] = workers
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--mode", choices=("close", "keepalive"), default="close")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = scripts(tmp)
        if script is None:
            return 2
        url = fresh_database("postgresql", args.postgres, tmp, "scale")
        code = prepare(url)
        for width in (int(w) for w in args.workers.split(",")):
            rows.append(run_width(width, url, code, args, script, tmp / f"spool{width}"))
    base = rows[0]["rps"]
    print(
        f"PostgreSQL, {args.mode} connections, {args.connections} connections, "
        f"{args.seconds} s per width"
    )
    failed = False
    for row in rows:
        lost = max(0, int(row["found"] - row["stored"]))
        failed = failed or lost > 0
        print(
            f"workers {int(row['workers'])}: {row['rps']:8.0f} req/s  x{row['rps'] / base:4.2f}  "
            f"p50 {row['p50']:6.2f} ms  p99 {row['p99']:7.2f} ms  "
            f"302s received {int(row['found'])}  clicks stored {int(row['stored'])}  lost {lost}"
            f"  socket errors {int(row['errors'])}"
        )
    if failed:
        print("FAILED: acknowledged clicks are missing")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
