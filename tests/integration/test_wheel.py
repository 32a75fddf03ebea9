"""The wheel as an operator installs it: built from the source, installed (not editable) into a fresh venv
with its dependencies, then that venv's ``relay`` migrates SQLite and Postgres and serves.

The build and install take about 50 s here (dependencies from pip's cache; setuptools for the isolated
build likewise), so they happen once for the module."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import (
    REDIS_URL,
    REPO,
    SECRET,
    free_port,
    scratch_postgres,
)

INSTALL_TIMEOUT_S = 300
WHERE = "import gateway, admin_ui; print(gateway.__file__, admin_ui.__file__)"


@dataclass
class Installed:
    wheel: Path
    venv: Path
    work: Path

    @property
    def relay(self) -> str:
        return str(self.venv / "bin" / "relay")

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("RELAY_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
        }
        return {**env, "RELAY_SECRET_KEY": SECRET, "RELAY_WORKERS": "1", **extra}


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    # Only what the Dockerfile copies: a file the wheel needs but the build context lacks fails here too.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("gateway", "admin_ui"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(tmp / "dist")],
         timeout=INSTALL_TIMEOUT_S)  # fmt: skip
    [wheel] = (tmp / "dist").glob("relay_gateway-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], timeout=INSTALL_TIMEOUT_S)
    work = tmp / "work"  # not the repository: nothing may be imported from the source tree
    work.mkdir()
    yield Installed(wheel=wheel, venv=venv, work=work)


def test_the_wheel_carries_migrations_catalog_templates_and_static_files(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    versions = {f"gateway/migrations/versions/{p.name}" for p in (REPO / "gateway/migrations/versions").glob("*.py")}
    assert versions and versions <= names
    assert {"gateway/migrations/env.py", "gateway/migrations/script.py.mako", "gateway/catalog/builtin.toml"} <= names
    for folder in ("templates", "static"):
        shipped = {n for n in names if n.startswith(f"admin_ui/{folder}/")}
        assert shipped == {
            f"admin_ui/{folder}/{p.relative_to(REPO / 'admin_ui' / folder).as_posix()}"
            for p in (REPO / "admin_ui" / folder).rglob("*")
            if p.is_file()
        }
    # The venv runs the wheel's copy, not the editable checkout.
    where = _run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import gateway, admin_ui; print(gateway.__file__, admin_ui.__file__)",
        ],
        cwd=installed.work,
        env=installed.env(),
    ).stdout.split()
    site = installed.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert [Path(p).parent.parent for p in where] == [site, site]


def test_relay_migrate_from_the_wheel_on_sqlite(installed: Installed) -> None:
    db = installed.work / "relay.db"
    r = _run([installed.relay, "migrate"], cwd=installed.work, env=installed.env(RELAY_DATABASE_URL=f"sqlite:///{db}"))
    assert "database is at the newest revision" in r.stdout
    assert db.stat().st_size > 0


@pytest.mark.postgres
def test_relay_migrate_and_serve_from_the_wheel_on_postgres(installed: Installed) -> None:
    with scratch_postgres() as url:
        env = installed.env(RELAY_DATABASE_URL=url, RELAY_REDIS_URL=REDIS_URL)
        r = _run([installed.relay, "migrate"], cwd=installed.work, env=env, timeout=120)
        assert "database is at the newest revision" in r.stdout
        port = free_port()
        proc = subprocess.Popen(
            [installed.relay, "serve", "--port", str(port)],
            cwd=installed.work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, f"relay serve exited {proc.returncode}: {proc.communicate()[0]}"
                assert time.monotonic() < deadline, "relay serve from the wheel did not come up"
                time.sleep(0.2)
            login = httpx.get(f"{base}/admin/login", timeout=5)
            assert login.status_code == 200 and 'type="password"' in login.text  # the shipped template
            stylesheet = re.search(r'href="(/[^"]+\.css)[^"]*"', login.text)
            assert stylesheet, "the login page links no stylesheet"
            css = httpx.get(base + stylesheet.group(1), timeout=5)  # the shipped static files
            assert css.status_code == 200 and css.text == (REPO / "admin_ui/static/admin.css").read_text()
            assert httpx.get(f"{base}/readyz", timeout=5).json()["database"] == "ok"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
