"""The ``source:`` section (and each entry of ``sources:``): a file, an HTTP API or a SQL
query, and how its records map onto the canonical contract fields of SPEC §2.

Composed by ``syncd.config.model.Config``; each kind's reader in ``syncd.sources`` reads
its own model, and ``syncd.sources.mapping`` applies what they share (``fields``,
``status_map``, ``roles_from``). ``SourceConfig`` is the tagged union of the kinds: a
section without ``type:`` is a file, as in earlier releases.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from syncd.config.common import Duration, Model, Problem, Size, read_secret, secret_problem

_PASSWORD_IN_URL = re.compile(r"://[^/@:]*:[^/@]*@")  # scheme://user:password@host
_CREDENTIALS = (
    "A relative path is looked up in $CREDENTIALS_DIRECTORY when systemd set it, otherwise "
    "next to the config file."
)


class RolesFrom(Model):
    """How the roles field of a record becomes a list of role names."""

    delimiter: str = Field(
        default=";",
        min_length=1,
        description="Separator of the role names when the source gives them as one string "
        "(e.g. 'developer;ops'); a list is taken as it is.",
    )
    key: str | None = Field(
        default=None,
        description="When the source gives a list of objects, the dotted path of the role name "
        "inside each (e.g. code for [{code: DEV}]). Unset: the items are the names.",
    )
    map: dict[str, str] = Field(
        default_factory=dict,
        description="The source's role name -> the role name defined in roles: (e.g. DEV: "
        "developer). A name not listed is kept as it is.",
    )


class SourceBase(Model):
    """What every kind of source has: its name among several, the field mapping, polling."""

    name: str | None = Field(
        default=None,
        description="The source's name in messages and record locations; required for each "
        "entry of sources:, unset for source: (then named after its kind).",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical field name -> where the source holds it: a column name (file, "
        "sql) or a dotted path in each item (http, e.g. email: worker.contact.email). A field "
        "not listed is read under its canonical name. Empty: the canonical names are used.",
    )
    status_map: dict[str, str] = Field(
        default_factory=dict,
        description="The source's own status value -> active, cancelled or terminated (e.g. "
        "Closed: terminated). A value not listed is read as it is.",
    )
    roles_from: RolesFrom = Field(
        default=RolesFrom(), description="How the roles field becomes role names."
    )
    poll: Duration = Field(
        default=timedelta(minutes=1),
        description="How often syncd run asks the source whether it changed (http: ETag or "
        "content digest; sql: content digest; file: its size and times, every half second "
        "whatever this says). An unchanged source costs no planning.",
    )

    @property
    def label(self) -> str:
        """The source's name in messages."""
        return self.name or str(getattr(self, "type", "source"))

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check, located relative to this source."""
        out = []
        for canon, status in self.status_map.items():
            if status not in ("active", "cancelled", "terminated"):
                out.append(
                    Problem(
                        ("status_map", canon),
                        f"{status!r} is not a contract status",
                        "map it to active, cancelled or terminated",
                    )
                )
        return out


class FileSource(SourceBase):
    """Contracts from a local YAML, JSON or CSV file, re-read on every cycle."""

    type: Literal["file"] = Field(
        default="file", description="file: a local file (the default when type is not given)."
    )
    path: Path = Field(
        description="The contracts file: .yaml/.yml or .json holding a contracts: list, or "
        ".csv with a header row. A relative path is relative to the config file's folder."
    )
    format: Literal["auto", "yaml", "json", "csv"] = Field(
        default="auto", description="How to parse path; auto decides by the file extension."
    )
    csv_delimiter: str = Field(
        default=",",
        description="Field separator of a CSV source; roles inside one cell are separated by ;.",
    )
    max_bytes: Size = Field(
        default=64 << 20,
        gt=0,
        description="Largest source file read (e.g. 64MiB); a larger one is a source error, "
        "so a runaway export cannot exhaust memory. A cycle holds about 7 (YAML, JSON) to 15 "
        "(CSV) times the file's size in memory.",
    )


class Paging(Model):
    """How an HTTP source walks the pages of its collection."""

    style: Literal["link", "next", "cursor", "page", "offset", "none"] = Field(
        default="link",
        description="link: follow the Link: rel=next header; next: a next-page URL in the body "
        "(at next); cursor: a cursor in the body (at cursor) sent back as cursor_param; page or "
        "offset: page_param / offset_param counted up until a short or empty page; none: one "
        "request.",
    )
    next: str = Field(default="next", description="Dotted path of the next page's URL (next).")
    cursor: str = Field(
        default="next_cursor", description="Dotted path of the next cursor in the body (cursor)."
    )
    cursor_param: str = Field(default="cursor", description="Query parameter of the cursor.")
    page_param: str = Field(default="page", description="Query parameter of the page number.")
    first_page: int = Field(default=1, ge=0, description="The first page's number (page).")
    offset_param: str = Field(default="offset", description="Query parameter of the offset.")
    size_param: str = Field(
        default="limit",
        description='Query parameter of the page size, sent with page and offset ("": none).',
    )
    size: int = Field(default=500, ge=1, le=100_000, description="Items asked for per page.")
    total: str | None = Field(
        default=None,
        description="Dotted path of the total item count in the body, when the API reports "
        "one: a read whose items disagree with it fails as a whole.",
    )
    total_header: str | None = Field(
        default=None,
        description="Response header holding the total item count (e.g. X-Total-Count), "
        "checked as total is.",
    )


class HttpSource(SourceBase):
    """Contracts from a JSON collection of an HTTP API (an HR or vendor-management system)."""

    type: Literal["http"] = Field(description="http: a JSON API read with GET.")
    url: str = Field(
        description="URL of the collection's first page, e.g. https://vms.example.com/api/v2/"
        "assignments. http:// also needs allow_plaintext."
    )
    allow_plaintext: bool = Field(
        default=False,
        description="Must be true to use http:// URLs: the records (and any token) then cross "
        "the network unencrypted.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the server with. Unset: the system's."
    )
    records: str = Field(
        default="",
        description='Dotted path of the item list in each page (e.g. data.items); "": the page '
        "itself is the list.",
    )
    paging: Paging = Field(default=Paging(), description="How to walk the pages.")
    max_pages: int = Field(
        default=1000, ge=1, description="More pages than this fail the read as a whole."
    )
    max_records: int = Field(
        default=1_000_000, ge=1, description="More items than this fail the read as a whole."
    )
    timeout: int = Field(default=30, ge=1, le=600, description="Seconds per request.")
    retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Retries of a page on 429, 5xx, a network error or a cut response, after "
        "Retry-After or an exponential backoff; a page still failing fails the read.",
    )
    max_retry_after: int = Field(
        default=60, ge=0, le=3600, description="Longest Retry-After waited for, in seconds."
    )
    token_file: Path | None = Field(
        default=None, description="File holding a bearer token. " + _CREDENTIALS
    )
    token_env: str | None = Field(default=None, description="Variable holding a bearer token.")
    username: str | None = Field(default=None, description="User for HTTP basic auth.")
    password_file: Path | None = Field(
        default=None, description="File holding the basic auth password. " + _CREDENTIALS
    )
    password_env: str | None = Field(
        default=None, description="Variable holding the basic auth password."
    )
    token_url: str | None = Field(
        default=None, description="OAuth2 token endpoint (client credentials grant)."
    )
    client_id: str | None = Field(default=None, description="OAuth2 client id, with token_url.")
    client_secret_file: Path | None = Field(
        default=None, description="File holding the OAuth2 client secret. " + _CREDENTIALS
    )
    client_secret_env: str | None = Field(
        default=None, description="Variable holding the OAuth2 client secret."
    )
    scope: str | None = Field(default=None, description="OAuth2 scope asked for with token_url.")

    def read_token(self) -> str:
        """The bearer token; callers must never log or print it."""
        return read_secret(self.token_file, self.token_env)

    def read_password(self) -> str:
        """The basic auth password; callers must never log or print it."""
        return read_secret(self.password_file, self.password_env)

    def read_client_secret(self) -> str:
        """The OAuth2 client secret; callers must never log or print it."""
        return read_secret(self.client_secret_file, self.client_secret_env)

    def problems(self) -> list[Problem]:
        out = super().problems()
        for field, url in (("url", self.url), ("token_url", self.token_url)):
            scheme = (url or "https://").split("://", 1)[0].lower()
            if scheme not in ("https", "http"):
                out.append(Problem((field,), f"{url!r} is not an http(s) URL", "use https://"))
            elif scheme == "http" and not self.allow_plaintext:
                out.append(
                    Problem(
                        (field,),
                        "the records would cross the network unencrypted",
                        "use https://, or set allow_plaintext: true explicitly",
                    )
                )
        schemes = [self.token_file or self.token_env, self.username, self.token_url]
        if sum(1 for given in schemes if given) > 1:
            out.append(
                Problem(
                    ("token_file",),
                    "more than one way to authenticate",
                    "give one of token_file/token_env, username, token_url",
                )
            )
        out += self._secret_problems()
        return out

    def _secret_problems(self) -> list[Problem]:
        wanted: list[tuple[str, Path | None, str | None]] = []
        if self.token_file or self.token_env:
            wanted.append(("token", self.token_file, self.token_env))
        if self.username:
            wanted.append(("password", self.password_file, self.password_env))
        if self.token_url:
            wanted.append(("client_secret", self.client_secret_file, self.client_secret_env))
            if not self.client_id:
                out = [Problem(("client_id",), "token_url needs a client_id", "add client_id:")]
                return out + self._unreadable(wanted)
        return self._unreadable(wanted)

    @staticmethod
    def _unreadable(wanted: list[tuple[str, Path | None, str | None]]) -> list[Problem]:
        out = []
        for name, file, env in wanted:
            problem = secret_problem(name, file, env)
            if problem:
                field = f"{name}_env" if env else f"{name}_file"
                out.append(Problem((field,), problem, f"point {field} at the {name}"))
        return out


class SqlSource(SourceBase):
    """Contracts from a SQL query (a view HR maintains), through SQLAlchemy Core."""

    type: Literal["sql"] = Field(description="sql: a query against a database.")
    url_file: Path | None = Field(
        default=None,
        description="File holding the SQLAlchemy database URL, credentials included (e.g. "
        "postgresql+psycopg://syncd:SECRET@db/hr). " + _CREDENTIALS,
    )
    url_env: str | None = Field(
        default=None, description="Variable holding the database URL, instead of url_file."
    )
    url: str | None = Field(
        default=None,
        description="The database URL when it carries no secret, e.g. sqlite:////srv/hr.db "
        "(SQLite, the embedded default for small setups).",
    )
    query: str = Field(
        description="SELECT whose columns are the canonical fields (or mapped with fields:); "
        "roles as an array or a delimited string. Read in one read-only transaction at a "
        "consistent snapshot."
    )
    change_query: str | None = Field(
        default=None,
        description="A cheap SELECT whose result changes whenever the contracts do, e.g. "
        "SELECT max(updated_at), count(*) FROM hr.contractors (at most 100 rows). Each "
        "poll runs it instead of digesting every row the query returns; the full read at "
        "daemon.interval still catches what it misses (a query that depends on the date).",
    )
    timeout: int = Field(default=30, ge=1, le=3600, description="Statement timeout, in seconds.")
    max_records: int = Field(
        default=1_000_000, ge=1, description="More rows than this fail the read as a whole."
    )

    def read_url(self) -> str:
        """The database URL; callers must never log or print it (it holds credentials)."""
        if self.url is not None:
            return self.url
        return read_secret(self.url_file, self.url_env)

    def problems(self) -> list[Problem]:
        out = super().problems()
        given = [g for g in (self.url, self.url_file, self.url_env) if g]
        if len(given) != 1:
            out.append(
                Problem(("url_file",), "give exactly one of url, url_file, url_env", "add one")
            )
        elif self.url is not None and _PASSWORD_IN_URL.search(self.url):
            out.append(
                Problem(
                    ("url",),
                    "the URL carries a password, and the config file is no place for one",
                    "put the URL in a file named by url_file, or a variable named by url_env",
                )
            )
        elif self.url is None:
            problem = secret_problem("url", self.url_file, self.url_env)
            if problem:
                field = "url_env" if self.url_env else "url_file"
                out.append(Problem((field,), problem, "point it at the database URL"))
        return out


def _kind(value: Any) -> str:
    """A source's kind: its ``type:``, file when it has none."""
    if isinstance(value, dict):
        return str(value.get("type", "file"))
    return str(getattr(value, "type", "file"))


SourceConfig = Annotated[
    Annotated[FileSource, Tag("file")]
    | Annotated[HttpSource, Tag("http")]
    | Annotated[SqlSource, Tag("sql")],
    Discriminator(_kind),
]
