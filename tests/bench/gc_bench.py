"""The garbage collector's share of a redirect: Python's default young-generation threshold
against the one a worker sets (`acquisition.web.app.YOUNG_COLLECTION`), side by side.

Run:  .venv/bin/python tests/bench/gc_bench.py [--seconds 5] [--rounds 4] [--db sqlite]
Needs wrk. Two workers of ours, identical but for the threshold, take interleaved keep-alive
rounds; each reports the time its collections took (timed with `gc.callbacks` on the event
loop's thread). Printed per click: collector time, event-loop CPU, and req/s with the ratio.
Every redirect waits for its group commit, so the objects of the requests in flight stay
alive; how often the collector walks them is what the threshold decides.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench import redirect_bench as bench  # noqa: E402

PYTHON_DEFAULT = 700


def worker() -> Any:
    """uvicorn factory: our app, timing its collections; GC_BENCH_DEFAULT=1 puts Python's
    default threshold back once start-up is over."""
    from acquisition.web.app import create_app_from_env

    app = create_app_from_env()
    spent = {"seconds": 0.0, "collections": 0}
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent["seconds"] += time.perf_counter() - began[0]
            spent["collections"] += 1

    gc.callbacks.append(timed)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and os.environ.get("GC_BENCH_DEFAULT"):

            async def started(message: Any) -> None:
                if message["type"] == "lifespan.startup.complete":
                    gc.set_threshold(PYTHON_DEFAULT, *gc.get_threshold()[1:])
                await send(message)

            await app(scope, receive, started)
            return
        if scope["type"] == "http" and scope["path"] == "/__gc":
            body = json.dumps({**spent, "threshold": gc.get_threshold()[0]}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


def cpu_seconds(pid: int) -> float:
    """CPU time of the process's main thread (the event loop)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def collector(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__gc") as answer:
        return json.loads(answer.read())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = bench.scripts(tmp)
        if script is None:
            return 2
        servers = {}
        try:
            for name in ("default", "worker"):
                url = bench.fresh_database(args.db, args.postgres, tmp, f"gc_{name}")
                code = bench.prepare(url)
                env = bench.server_env(
                    url,
                    tmp / f"spool-{name}",
                    **({"GC_BENCH_DEFAULT": "1"} if name == "default" else {}),
                )
                port = bench.free_port()
                proc = bench.start("tests.bench.gc_bench:worker", port, 1, env)
                servers[name] = (proc, port, f"http://127.0.0.1:{port}/{code}")
            results = rounds(servers, args, script)
        finally:
            for proc, _port, _url in servers.values():
                bench.stop(proc)
    print(f"{args.db} keep-alive, connections={args.connections}, {args.seconds}s x {args.rounds}")
    for name, runs in results.items():
        threshold = runs[0]["threshold"]
        print(
            f"{name:8} young threshold {threshold:6.0f}: "
            f"collector {statistics.median(r['gc_us'] for r in runs):5.2f} us/click, "
            f"loop CPU {statistics.median(r['cpu_us'] for r in runs):5.1f} us/click, "
            f"{statistics.median(r['rps'] for r in runs):7.0f} req/s"
        )
    ratios = [
        w["rps"] / d["rps"] for d, w in zip(results["default"], results["worker"], strict=True)
    ]
    print(
        f"req/s worker/default: {statistics.median(ratios):.2f} (rounds "
        + " ".join(f"{r:.2f}" for r in ratios)
        + ")"
    )
    return 0


def rounds(
    servers: dict[str, tuple[Any, int, str]], args: argparse.Namespace, script: Path
) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for _proc, _port, url in servers.values():
        bench.wrk(url, 2, args.connections, script, close=False)  # warm up
    for n in range(args.rounds):
        order = list(servers.items())
        for name, (proc, port, url) in order if n % 2 == 0 else order[::-1]:
            before, cpu = collector(port), cpu_seconds(proc.pid)
            run = bench.wrk(url, args.seconds, args.connections, script, close=False)
            after, used = collector(port), cpu_seconds(proc.pid) - cpu
            clicks = max(run["found"], 1)
            results[name].append(
                {
                    "rps": run["rps"],
                    "gc_us": (after["seconds"] - before["seconds"]) / clicks * 1e6,
                    "cpu_us": used / clicks * 1e6,
                    "threshold": after["threshold"],
                }
            )
    return results


if __name__ == "__main__":
    raise SystemExit(main())
