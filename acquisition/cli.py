"""The `acquisition` command: serve, migrate, API keys, links and stats from a terminal."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.config
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

from acquisition import apikeys, cli_qr, cli_users, links, stats
from acquisition.config import ConfigError, Settings
from acquisition.db import connect, migrate
from acquisition.errors import AcquisitionError


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
        return int(args.run(settings, args) or 0)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except AcquisitionError as error:
        details = "; ".join(f"{e.field}: {e.message}" for e in error.errors)
        print(
            f"error: {error.message}"
            + (f" ({details})" if details and len(error.errors) > 1 else ""),
            file=sys.stderr,
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acquisition", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the HTTP service (applies migrations first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("ACQUISITION_WORKERS", "2")),
        help="worker processes (default 2: one stalls under bursts of new connections)",
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log one line per request (method, route, status, duration, request id)",
    )
    serve.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default="auto",
        help="json lines, or plain text; auto: text on a terminal, json otherwise",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply pending migrations on start (production deploys migrate once)",
    )
    serve.set_defaults(run=_serve)

    mig = commands.add_parser("migrate", help="apply pending database migrations")
    mig.set_defaults(run=_migrate)

    key = commands.add_parser("apikey", help="create, list or revoke API keys")
    key_commands = key.add_subparsers(title="apikey commands", required=True)
    create = key_commands.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True)
    create.set_defaults(run=_apikey_create)
    revoke = key_commands.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    revoke.set_defaults(run=_apikey_revoke)
    key_commands.add_parser("list", help="list keys (never the secrets)").set_defaults(
        run=_apikey_list
    )

    link = commands.add_parser("link", help="create tracked links")
    link_commands = link.add_subparsers(title="link commands", required=True)
    link_create = link_commands.add_parser("create", help="create a link; prints its short URL")
    link_create.add_argument(
        "--channel",
        type=int,
        action="append",
        required=True,
        help="channel id (repeat for a multi-channel link)",
    )
    for name in links.UTM:
        link_create.add_argument(f"--{name}")
    link_create.add_argument("--placement", help="placement name")
    link_create.add_argument("--placement-kind", default="other")
    link_create.add_argument("--address")
    link_create.add_argument("--cost")
    link_create.add_argument("--text", help="prefilled message text")
    link_create.add_argument("--slug", help="custom code instead of a generated one")
    link_create.set_defaults(run=_link_create)

    cli_qr.register(commands)  # qr CODE ..., qr batch ...
    cli_users.register(commands)  # user create|password|list: who may sign in to /admin

    rollup = commands.add_parser("rollups", help="the daily rollup the dashboard reads")
    rollup_commands = rollup.add_subparsers(title="rollups commands", required=True)
    rebuild = rollup_commands.add_parser(
        "rebuild", help="recompute the rollup from the base tables (all days, or from --since)"
    )
    rebuild.add_argument("--since", type=date.fromisoformat, help="first UTC day, YYYY-MM-DD")
    rebuild.set_defaults(run=_rollups_rebuild)

    stat = commands.add_parser("stats", help="print the funnel grouped by one key")
    stat.add_argument("--group-by", default="source", choices=stats.GROUPS)
    stat.add_argument("--campaign")
    stat.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stat.set_defaults(run=_stats)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from acquisition import logs

    formats = {"auto": None, "json": True, "text": False}
    log_config = logs.config(access_log=args.access_log, json_lines=formats[args.log_format])
    logging.config.dictConfig(log_config)
    if not args.no_migrate:
        _migrate(settings, args)
    with _metrics_dir(args.workers):
        uvicorn.run(
            "acquisition.web.app:create_app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers if args.workers > 1 else None,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=20,
            log_config=log_config,
            access_log=False,  # ours replaces uvicorn's (anonymised address, no query string)
        )
    return 0


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """Several workers share their Prometheus counts through files in one folder, which must
    be empty when they start (prometheus_client's multiprocess mode)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    if workers <= 1:
        yield
        return
    folder = tempfile.mkdtemp(prefix="acquisition-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(folder, ignore_errors=True)


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    db = connect(settings)
    try:
        migrate(db.engine)
    finally:
        db.dispose()
    return 0


def _apikey_create(settings: Settings, args: argparse.Namespace) -> int:
    db = connect(settings)
    with db.writer.begin() as session:
        key, token = apikeys.create(session, args.name[:100])
        key_id = key.id
    print(f"created API key {key_id} ({args.name}); it is shown only this once:", file=sys.stderr)
    print(token)
    return 0


def _apikey_revoke(settings: Settings, args: argparse.Namespace) -> int:
    db = connect(settings)
    with db.writer.begin() as session:
        key = apikeys.revoke(session, args.key)
        print(f"revoked API key {key.id} ({key.name})")
    return 0


def _apikey_list(settings: Settings, _args: argparse.Namespace) -> int:
    db = connect(settings)
    with db.reader() as session:
        for key in apikeys.list_all(session):
            state = "revoked" if key.revoked_at else "active"
            used = key.last_used_at.isoformat() if key.last_used_at else "never"
            print(f"{key.id}\t{key.prefix}…\t{key.name}\t{state}\tlast used {used}")
    return 0


def _link_create(settings: Settings, args: argparse.Namespace) -> int:
    data: dict[str, object] = {"channels": args.channel}
    data.update({name: getattr(args, name) for name in links.UTM if getattr(args, name)})
    if args.placement:
        data["placement"] = {
            "name": args.placement,
            "kind": args.placement_kind,
            "address": args.address,
            "cost": args.cost,
        }
    if args.text:
        data["text"] = args.text
    if args.slug:
        data["slug"] = args.slug
    spec = links.parse(data)
    db = connect(settings)
    with db.writer.begin() as session:
        link = links.create(session, spec)
        print(links.short_url(settings.base_url, link.code))
    return 0


def _rollups_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from acquisition import rollups

    db = connect(settings)
    try:
        days = rollups.rebuild(db.writer, since=args.since)
    finally:
        db.dispose()
    print(f"rebuilt the rollup of {days} days")
    return 0


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    params = {"group_by": args.group_by}
    if args.campaign:
        params["campaign"] = args.campaign
    query = stats.parse(params)
    db = connect(settings)
    with db.reader() as session:
        rows = stats.clicks(session, query)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    measures = [c for c in rows[0] if c != args.group_by] if rows else ["clicks", "bot_visits"]
    columns = [args.group_by, *measures]
    print("\t".join(columns))
    for row in rows:
        print("\t".join("" if row[c] is None else str(row[c]) for c in columns))
    return 0
