"""A throwaway PostgreSQL server on a free loopback port, from Debian's binaries or pgserver's wheel."""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    """The newest Debian PostgreSQL, else the server the `pgserver` wheel (a dev dependency) ships."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    bundled = Path(spec.origin).parent / "pginstall" / "bin"
    return bundled if (bundled / "initdb").exists() else None


def _server_account() -> str:
    """initdb refuses root: the Debian package's `postgres` account where it exists, else `nobody`."""
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        return "nobody"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(bin_dir: Path, user: str = "dagster") -> Iterator[dict[str, str]]:
    as_root = os.geteuid() == 0
    account = _server_account()
    prefix = ["runuser", "-u", account, "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    data = base / "data"
    if as_root:
        pw = pwd.getpwnam(account)
        os.chown(base, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8")
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "server.log"), "start",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=100",
        )
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "dagster")
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USERNAME": user,
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
            check=False,  # best effort: a server that never started has nothing to stop
        )
        shutil.rmtree(base, ignore_errors=True)
