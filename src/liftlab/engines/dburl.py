"""Database URLs: parsed by ``urllib.parse`` with the SQLAlchemy conventions, credentials
percent-decoded, and never shown.

``postgresql://USER:PASSWORD@HOST:PORT/DB?schema=S&sslmode=require`` (user and password
percent-encoded: ``p%40ss`` for ``p@ss``; other query keys are libpq parameters) and
``duckdb:///relative/file.duckdb`` or ``duckdb:////absolute/file.duckdb`` (the path comes after
the third slash, as for SQLAlchemy's ``sqlite:///``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from liftlab.core.errors import UserError

MASK = "***"
SECRET_KEYS = ("password", "passfile", "sslpassword")


def mask_url(url: str) -> str:
    """The URL with everything between the user name and the last ``@`` replaced by ***.

    Deliberately not a URL parser: it must hide a password whatever it holds, even
    characters that should have been percent-encoded (``@ / ? #``) and break parsing."""
    url = re.sub(rf"([?&](?:{'|'.join(SECRET_KEYS)})=)[^&#]*", rf"\1{MASK}", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, after = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':' + MASK if colon else ''}@{after}"


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (and its percent-encoded forms) replaced by ***."""
    forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote(s))}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


@dataclass(frozen=True)
class DbUrl:
    """A parsed database URL; ``label`` is what messages and reports may show."""

    scheme: str
    label: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    dbname: str | None = None
    path: str | None = None
    schema: str | None = None
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential this URL carries, to scrub from driver messages."""
        return tuple(v for v in (self.password, *(v for k, v in self.options
                                                   if k in SECRET_KEYS)) if v)


def parse_db_url(url: str) -> DbUrl:
    """Parse ``url`` or raise a UserError that never echoes a credential."""
    label = mask_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced [ of an IPv6 host
        raise UserError(f"{label}: not a valid URL ({exc})") from None
    if "@" in parts.path + parts.query + parts.fragment:
        raise UserError(f"{label}: the user name or password holds a character that must be "
                        "percent-encoded in a URL (@ %40, / %2F, ? %3F, # %23, : %3A, % %25), "
                        "or leave the password out and set PGPASSWORD")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    options = tuple((k, v) for k, v in query if k != "schema")
    if parts.scheme == "duckdb":
        return DbUrl("duckdb", label, path=_duckdb_path(parts.netloc, parts.path, label),
                     schema=schema)
    if parts.scheme not in ("postgresql", "postgres"):
        raise UserError(f"unsupported data URL scheme {parts.scheme!r}; use postgresql:// or "
                        "duckdb:///")
    return DbUrl("postgresql", label, host=parts.hostname, port=_port(parts.netloc, label),
                 user=unquote(parts.username) if parts.username else None,
                 password=unquote(parts.password) if parts.password is not None else None,
                 dbname=unquote(parts.path.lstrip("/")) or None, schema=schema, options=options)


def _port(netloc: str, label: str) -> int | None:
    hostport = netloc.rpartition("@")[2]
    text = hostport.rpartition("]")[2] if hostport.startswith("[") else hostport
    port = text.partition(":")[2]
    if not port:
        return None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{label}: the port {port!r} is not a number from 1 to 65535; "
                        "write e.g. postgresql://user@host:5432/db")
    return int(port)


def _duckdb_path(netloc: str, path: str, label: str) -> str:
    """The file after the third slash: duckdb:///rel.duckdb, duckdb:////abs.duckdb."""
    if netloc:
        raise UserError(f"{label}: {netloc!r} sits where a host goes; a DuckDB file comes "
                        f"after three slashes: duckdb:///{unquote(netloc + path)} for a file "
                        "relative to the working folder, duckdb:////srv/data/crm.duckdb for an "
                        "absolute path")
    file = unquote(path[1:] if path.startswith("/") else path)
    if not file:
        raise UserError(f"{label}: no DuckDB file given (liftlab reads a file, not an "
                        "in-memory database); write duckdb:///path/to/file.duckdb")
    return file
