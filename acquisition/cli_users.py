"""`acquisition user create|list|password`: the people who may sign in to the web UI."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from acquisition import accounts
from acquisition.config import Settings
from acquisition.db import connect


def register(commands: Any) -> None:
    user = commands.add_parser("user", help="create or list users of the web UI (/admin)")
    user_commands = user.add_subparsers(title="user commands", required=True)
    create = user_commands.add_parser("create", help="create a user who can sign in")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password",
        help=f"at least {accounts.MIN_PASSWORD} characters; asked for when left out "
        "(a password on the command line is visible to other local users)",
    )
    create.set_defaults(run=_create)
    password = user_commands.add_parser("password", help="set a user's password")
    password.add_argument("--email", required=True)
    password.add_argument("--password")
    password.set_defaults(run=_password)
    user_commands.add_parser("list", help="list users (never the password hashes)").set_defaults(
        run=_list
    )


def _ask(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise SystemExit("the passwords differ; nothing was changed")
    return first


def _create(settings: Settings, args: argparse.Namespace) -> int:
    email = accounts.normalize_email(args.email)
    secret = accounts.check_password(_ask(args))
    db = connect(settings)
    try:
        with db.writer.begin() as session:
            user = accounts.create(session, email, secret)
            print(f"created user {user.id} ({user.email}); sign in at {settings.base_url}/admin/")
    finally:
        db.dispose()
    return 0


def _password(settings: Settings, args: argparse.Namespace) -> int:
    email = accounts.normalize_email(args.email)
    secret = accounts.check_password(_ask(args))
    db = connect(settings)
    try:
        with db.writer.begin() as session:
            user = next((u for u in accounts.list_all(session) if u.email == email), None)
            if user is None:
                print(f"error: no user with email {email}", file=sys.stderr)
                return 1
            accounts.set_password(session, user, secret)
            print(f"changed the password of user {user.id} ({user.email})")
    finally:
        db.dispose()
    return 0


def _list(settings: Settings, _args: argparse.Namespace) -> int:
    db = connect(settings)
    try:
        with db.reader() as session:
            for user in accounts.list_all(session):
                seen = user.last_login_at.isoformat() if user.last_login_at else "never"
                print(
                    f"{user.id}\t{user.email}\tcreated {user.created_at.isoformat()}"
                    f"\tlast sign-in {seen}"
                )
    finally:
        db.dispose()
    return 0
