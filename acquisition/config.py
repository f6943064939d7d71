"""Settings from the environment: one typed, frozen object; every error names the variable."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

PREFIX = "ACQUISITION_"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and the expected form."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///acquisition.db"
    base_url: str = "http://localhost:8000"
    secret_key: str = field(default="", repr=False)
    env: str = "development"
    trusted_proxies: tuple[Network, ...] = ()
    # Private networks a channel's relay_url may reach (a bot backend beside the service).
    relay_private_networks: tuple[Network, ...] = ()
    max_body_bytes: int = 2 * 1024 * 1024
    pool_size: int = 10
    pool_timeout: float = 2.0
    link_cache_seconds: float = 5.0
    rate_limit_api: str = "600/minute"
    rate_limit_hooks: str = "3000/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_storage: str = "memory://"
    spool_dir: str = ""

    @property
    def spool_path(self) -> Path:
        """Where acknowledged clicks wait for the database: beside a SQLite file, or as set."""
        if self.spool_dir:
            return Path(self.spool_dir)
        if self.is_sqlite:
            return Path(self.database_url.removeprefix("sqlite:///") + ".spool")
        return Path("acquisition-spool")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            return env.get(PREFIX + name, default).strip() or default

        mode = get("ENV", "development")
        if mode not in ("development", "production"):
            raise ConfigError(f"{PREFIX}ENV must be 'development' or 'production', not {mode!r}")
        database_url = _database_url(get("DATABASE_URL", cls.database_url))
        base_url = _base_url(get("BASE_URL", cls.base_url))
        secret_key = env.get(PREFIX + "SECRET_KEY", "").strip()
        if not secret_key:
            if mode == "production":
                raise ConfigError(f"{PREFIX}SECRET_KEY is required when {PREFIX}ENV=production")
            secret_key = _kept_secret(database_url)
        elif len(secret_key) < 16:
            raise ConfigError(f"{PREFIX}SECRET_KEY must be at least 16 characters long")
        if mode == "production" and PREFIX + "BASE_URL" not in env:
            raise ConfigError(f"{PREFIX}BASE_URL is required when {PREFIX}ENV=production")
        return cls(
            database_url=database_url,
            base_url=base_url,
            secret_key=secret_key,
            env=mode,
            trusted_proxies=_networks(get("TRUSTED_PROXIES", ""), "TRUSTED_PROXIES"),
            relay_private_networks=_networks(
                get("RELAY_PRIVATE_NETWORKS", ""), "RELAY_PRIVATE_NETWORKS"
            ),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes, 1024, 1 << 30),
            pool_size=_int(env, "POOL_SIZE", cls.pool_size, 1, 1000),
            pool_timeout=_float(env, "POOL_TIMEOUT", cls.pool_timeout, 0.05, 60),
            link_cache_seconds=_float(env, "LINK_CACHE_SECONDS", cls.link_cache_seconds, 0, 3600),
            rate_limit_api=_rate(get("RATE_LIMIT_API", cls.rate_limit_api), "RATE_LIMIT_API"),
            rate_limit_hooks=_rate(
                get("RATE_LIMIT_HOOKS", cls.rate_limit_hooks), "RATE_LIMIT_HOOKS"
            ),
            rate_limit_login=_rate(
                get("RATE_LIMIT_LOGIN", cls.rate_limit_login), "RATE_LIMIT_LOGIN"
            ),
            rate_limit_storage=get("RATE_LIMIT_STORAGE", cls.rate_limit_storage),
            spool_dir=get("SPOOL_DIR", ""),
        )


def _database_url(value: str) -> str:
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        # psycopg 3 is the driver we ship; plain URLs copied from a provider should just work.
        value = "postgresql+psycopg://" + value.split("://", 1)[1]
    if not (value.startswith("sqlite:///") or value.startswith("postgresql+psycopg://")):
        raise ConfigError(
            f"{PREFIX}DATABASE_URL must be sqlite:///<file> or postgresql://user@host/db, "
            f"not {value!r}"
        )
    return value


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    # An origin only: QR codes upper-case the whole short URL, and only the origin is
    # case-insensitive.
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            f"{PREFIX}BASE_URL must be an http(s) origin such as https://go.example.com "
            f"(no path), not {value!r}"
        )
    return value.rstrip("/")


def _kept_secret(database_url: str) -> str:
    """For the embedded default: generate once, keep beside the database file, warn."""
    path = Path(database_url.removeprefix("sqlite:///") or "acquisition.db")
    if str(path) in (":memory:", ""):
        return secrets.token_urlsafe(32)
    key_file = path.with_name(path.name + ".secret")
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(32)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    log.warning(
        "%sSECRET_KEY is not set: generated one and kept it in %s; set it explicitly in production",
        PREFIX,
        key_file,
    )
    return key


def _networks(value: str, name: str) -> tuple[Network, ...]:
    nets = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{PREFIX}{name} must be a comma-separated list of IP addresses or "
                f"networks, and {item!r} is neither"
            ) from None
    return tuple(nets)


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name} must be a number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{PREFIX}{name} must be between {low} and {high}, not {value}")
    return value


def _rate(value: str, name: str) -> str:
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ConfigError(
            f"{PREFIX}{name} must be a rate such as '600/minute', not {value!r}"
        ) from None
    return value
