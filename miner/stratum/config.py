"""Pool configuration as the user types it: a URL, a worker name, a password."""
from __future__ import annotations

import ssl
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from miner.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMES = {"stratum+tcp": False, "stratum": False, "tcp": False,
           "stratum+ssl": True, "stratum+tls": True, "ssl": True, "tls": True}


@dataclass(frozen=True)
class PoolConfig:
    url: str
    user: str
    password: str = field(default="x", repr=False)   # never shown: repr, logs and snapshots omit it
    host: str = field(init=False, compare=False)
    port: int = field(init=False, compare=False)
    tls: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        host, port, tls = parse_url(self.url)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "tls", tls)
        if not isinstance(self.user, str) or not self.user:
            raise ConfigError(f"pool {self.safe_url}: a worker name (user) is required")
        if not isinstance(self.password, str):
            raise ConfigError(f"pool {self.safe_url}: password must be text")

    @property
    def safe_url(self) -> str:
        """The URL without any credentials, for logs and snapshots."""
        scheme = "stratum+ssl" if self.tls else "stratum+tcp"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_url(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) from stratum+tcp://host:port, stratum+ssl:// or stratum+tls://.
    A bare host:port means stratum+tcp. Raises ConfigError with the fix."""
    if not isinstance(url, str):
        raise ConfigError(f"pool URL must be text such as stratum+tcp://host:port, got {type(url).__name__} {url!r}")
    if not url.strip():
        raise ConfigError("pool URL is empty; use stratum+tcp://host:port")
    text = url.strip()
    if "://" not in text:
        text = "stratum+tcp://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"bad pool URL {_redact(url)!r}: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"bad pool URL {_redact(url)!r}: scheme {scheme!r} is not one of "
                          "stratum+tcp, stratum+ssl, stratum+tls")
    host = parts.hostname
    if not host:
        raise ConfigError(f"bad pool URL {_redact(url)!r}: no host")
    if port is None:
        raise ConfigError(f"bad pool URL {_redact(url)!r}: no port (e.g. {scheme}://{host}:3333)")
    if not 0 < port < 65536:
        raise ConfigError(f"bad pool URL {_redact(url)!r}: port must be 1..65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"bad pool URL {_redact(url)!r}: unexpected path or query")
    return host, port, SCHEMES[scheme]


def _redact(url: str) -> str:
    """Drop a user:password@ part before a URL goes into a message."""
    if "@" in url:
        head, _, tail = url.rpartition("@")
        scheme = head.split("://", 1)[0] + "://" if "://" in head else ""
        return scheme + "***@" + tail
    return url


def make_ssl_context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """Verifying TLS by default; cafile adds a private CA; insecure turns verification off (warned)."""
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load CA file {cafile!r}: {e}") from e
    if insecure:
        log.warning("TLS certificate verification is OFF (--insecure): the pool's identity is not checked")
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
