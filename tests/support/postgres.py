"""A real PostgreSQL for tests: a throwaway server, throwaway databases, Supabase's roles.

`postgres_server()` yields a superuser DSN. It uses `FRONTDESK_TEST_POSTGRES_DSN` when that is
set; otherwise it finds PostgreSQL's binaries (Debian's `/usr/lib/postgresql/N/bin`, then
`pg_config --bindir`, then `PATH`), runs `initdb` into a temporary directory and starts a server
that listens on 127.0.0.1 on a free port, tuned for speed (no fsync), and removes it all at
the end. PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
system user. When no server can be had it raises `PostgresUnavailableError`; the pytest fixtures
turn that into a skip, or into a failure when `FRONTDESK_REQUIRE_POSTGRES=1` (CI).

Everything here is plain functions and context managers, so benchmarks can use it without
pytest; `tests.support.pg_fixtures` wraps it in fixtures.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    from collections.abc import Iterator

DSN_ENV = "FRONTDESK_TEST_POSTGRES_DSN"
REQUIRE_ENV = "FRONTDESK_REQUIRE_POSTGRES"

# Supabase's API roles. `authenticator` is the role PostgREST logs in as; it can switch to
# the others (SET ROLE) but does not inherit their privileges (NOINHERIT).
ANON_ROLE = "anon"
AUTHENTICATED_ROLE = "authenticated"
SERVICE_ROLE = "service_role"
AUTHENTICATOR_ROLE = "authenticator"
DEFAULT_AUTHENTICATOR_PASSWORD = "frontdesk-test-authenticator"

_START_TIMEOUT_S = 60


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be found or started."""


def postgres_required() -> bool:
    """Whether a missing PostgreSQL must fail the tests instead of skipping them (CI)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# --- finding and running the binaries ---------------------------------------------------------


def _major_version(bindir: Path) -> int:
    """The major version of the `initdb` in `bindir`, or -1 when it can't be run."""
    try:
        out = subprocess.run(  # noqa: S603 - a PostgreSQL program, fixed arguments
            [str(bindir / "initdb"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else -1


def find_postgres_bindir() -> Path | None:
    """The directory holding `initdb`, `pg_ctl` and `postgres` of the newest PostgreSQL found."""
    candidates = {p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")}
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(  # noqa: S603 - pg_config from PATH, fixed arguments
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
            candidates.add(Path(bindir))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.add(Path(initdb).resolve().parent)
    usable = [d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    versions = {d: _major_version(d) for d in usable}
    usable = [d for d in usable if versions[d] >= 0]
    return max(usable, key=lambda d: (versions[d], str(d))) if usable else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_server_user(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as the `postgres` system user when we are root."""
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser:
            args = [runuser, "-u", "postgres", "--", *args]
        else:  # pragma: no cover - every Debian has runuser (util-linux)
            su = shutil.which("su") or "su"
            args = [su, "postgres", "-s", "/bin/sh", "-c", subprocess.list2cmdline(args)]
    # `cwd` is the server's own directory: the postgres user may not be allowed to read ours.
    return subprocess.run(  # noqa: S603 - fixed programs, arguments from this module
        args, cwd=cwd, capture_output=True, text=True, timeout=_START_TIMEOUT_S, check=False
    )


def _check(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    message = f"{what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    if log is not None and log.exists():
        message += "\nserver log:\n" + log.read_text(errors="replace")[-4000:]
    raise PostgresUnavailableError(message)


@contextlib.contextmanager
def temporary_postgres_server(bindir: Path | None = None) -> Iterator[str]:
    """Start a throwaway PostgreSQL server; yield a superuser DSN; stop and remove it after."""
    bindir = bindir or find_postgres_bindir()
    if bindir is None:
        raise PostgresUnavailableError(
            "no PostgreSQL binaries found (looked in /usr/lib/postgresql/*/bin, "
            f"`pg_config --bindir` and PATH); install PostgreSQL or set {DSN_ENV}"
        )
    server_uid: int | None = None
    if os.geteuid() == 0:
        try:
            import pwd  # POSIX only, and only needed as root

            server_uid = pwd.getpwnam("postgres").pw_uid
        except KeyError as exc:
            raise PostgresUnavailableError(
                "running as root, and PostgreSQL refuses to run as root, but there is no "
                "`postgres` system user to run it as"
            ) from exc

    base = Path(tempfile.mkdtemp(prefix="frontdesk-pg-"))
    data, log, pwfile = base / "data", base / "server.log", base / "pwfile"
    password = secrets.token_urlsafe(16)
    pwfile.write_text(password + "\n")
    if server_uid is not None:
        os.chown(base, server_uid, -1)
        os.chown(pwfile, server_uid, -1)
    started = False
    try:
        _check(
            _run_as_server_user(
                [
                    str(bindir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    "postgres",
                    "--pwfile",
                    str(pwfile),
                    # Password authentication over TCP (so the authenticator's password is
                    # really checked, as in production), trust on the private unix socket.
                    "--auth-host",
                    "scram-sha-256",
                    "--auth-local",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                cwd=base,
            ),
            "initdb",
        )
        # A port can be taken between choosing and binding it: retry a few times.
        for attempt in range(3):
            port = _free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(port),
                "unix_socket_directories": f"'{base}'",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "200",
                "logging_collector": "off",
            }
            with (data / "postgresql.conf").open("a") as conf:
                conf.write("\n# frontdesk test server\n")
                conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
            result = _run_as_server_user(
                [
                    str(bindir / "pg_ctl"),
                    "--pgdata",
                    str(data),
                    "--log",
                    str(log),
                    "--wait",
                    "--timeout",
                    str(_START_TIMEOUT_S),
                    "start",
                ],
                cwd=base,
            )
            if result.returncode == 0:
                started = True
                break
            if attempt == 2:
                _check(result, "pg_ctl start", log)
        yield make_conninfo(
            host="127.0.0.1", port=port, user="postgres", password=password, dbname="postgres"
        )
    finally:
        if started:
            _run_as_server_user(
                [str(bindir / "pg_ctl"), "--pgdata", str(data), "--mode", "immediate", "stop"],
                cwd=base,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a superuser DSN: `FRONTDESK_TEST_POSTGRES_DSN` if set, else a throwaway server."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    if dsn:
        yield dsn
        return
    with temporary_postgres_server() as dsn:
        yield dsn


# --- databases --------------------------------------------------------------------------------


def dsn_for_database(dsn: str, dbname: str, **overrides: str) -> str:
    """`dsn` with another database name (and optionally other user/password...)."""
    return make_conninfo(dsn, dbname=dbname, **overrides)


def create_database(admin_dsn: str, name: str | None = None) -> str:
    """CREATE DATABASE (a random name unless given); return a DSN for it, same user as admin."""
    name = name or f"frontdesk_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return dsn_for_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """DROP DATABASE, disconnecting whoever is still connected (PostgreSQL 13+)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def temporary_database(admin_dsn: str) -> Iterator[str]:
    """A fresh, empty database for the duration of the block; yields its (admin) DSN."""
    dsn = create_database(admin_dsn)
    try:
        yield dsn
    finally:
        drop_database(admin_dsn, database_name(dsn))


APP_ROLE = "frontdesk_app"
APP_PASSWORD = "frontdesk-test-app"


@contextlib.contextmanager
def create_app_database(admin_dsn: str) -> Iterator[str]:
    """A fresh database owned by `frontdesk_app`, an ordinary login role; yields its DSN.

    How an application usually reaches a managed PostgreSQL: no superuser, no CREATEDB,
    owner of its own database (so it may create tables in `public`).
    """
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        # Suppressed: another session created the role at the same moment.
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            conn.execute(
                sql.SQL(
                    "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role}) "
                    "THEN CREATE ROLE {ident} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; "
                    "END IF; END $$"
                ).format(role=sql.Literal(APP_ROLE), ident=sql.Identifier(APP_ROLE))
            )
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(APP_PASSWORD)
            )
        )
        name = f"frontdesk_app_{secrets.token_hex(6)}"
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)
            )
        )
    try:
        yield dsn_for_database(admin_dsn, name, user=APP_ROLE, password=APP_PASSWORD)
    finally:
        drop_database(admin_dsn, name)


def database_name(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


# --- Supabase's roles -------------------------------------------------------------------------

# Roles are cluster-wide, so they are created only if missing (several databases, and several
# test sessions sharing one server through FRONTDESK_TEST_POSTGRES_DSN, run this).
_CREATE_ROLES = """
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another session created them at the same moment
END
$roles$
"""

# Per database: what Supabase grants in `public`, including its default privileges (objects
# the migrating superuser creates in `public` are reachable by the API roles until revoked --
# which is why migrations must revoke EXECUTE and enable RLS themselves).
_DATABASE_GRANTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""


def setup_supabase_roles(
    dsn: str, *, authenticator_password: str = DEFAULT_AUTHENTICATOR_PASSWORD
) -> str:
    """Create Supabase's API roles (idempotently) and grant them `public` in `dsn`'s database.

    `dsn` must be a superuser (or CREATEROLE) DSN. Returns the DSN the gateway logs in with:
    the same server and database as `dsn`, as `authenticator`. The authenticator's password is
    (re)set to `authenticator_password`: don't point this at a server whose own PostgREST logs
    in as `authenticator` (a local Supabase stack).
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(_CREATE_ROLES)
        conn.execute(
            sql.SQL("ALTER ROLE authenticator WITH LOGIN NOINHERIT PASSWORD {}").format(
                sql.Literal(authenticator_password)
            )
        )
        conn.execute("GRANT anon, authenticated, service_role TO authenticator")
        conn.execute(_DATABASE_GRANTS)
    return dsn_for_database(
        dsn, database_name(dsn), user=AUTHENTICATOR_ROLE, password=authenticator_password
    )
