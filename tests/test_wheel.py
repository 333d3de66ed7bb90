"""The wheel, built as a release is built and installed as a user installs it, works alone.

The source tree is copied (what git tracks, and new files it does not ignore), an sdist is made of it and the wheel is
built from that sdist, as ``python -m build`` does. The wheel goes with ``--no-deps`` into a fresh venv that sees the
dependencies already installed in this one (a ``.pth``), and ``pip install --dry-run --no-index`` checks that its
declared dependencies are all satisfied by them: nothing is downloaded twice. Then its ``media-server``, run from
another directory, serves the dashboard and transcribes a call with the models the wheel ships.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from media_server.client.wav import Recording, write_wav
from tests.conftest import free_port, wait_until_serving
from tests.synth import SCRIPT, require_flite, speak

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out


def _copy_source(dest: Path) -> None:
    """The files a clone (plus this working tree's new files) has: no venv, no build output, no data."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the wheel test copies the tree git lists")
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@dataclass
class Built:
    source: Path
    wheel: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    source = tmp_path_factory.mktemp("source")
    _copy_source(source)
    dist = tmp_path_factory.mktemp("dist")
    # The sdist, then the wheel from it (as `python -m build` does), with this venv's setuptools: no build isolation,
    # so nothing is downloaded.
    sdist = _run(
        sys.executable,
        "-c",
        f"from setuptools import build_meta; print(build_meta.build_sdist({str(dist)!r}))",
        cwd=source,
    ).stdout.split()[-1]
    _run(
        sys.executable,
        *("-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist),
        dist / sdist,
        cwd=dist,
    )
    (wheel,) = dist.glob("media_server-*.whl")
    return Built(source, wheel)


@dataclass
class Venv:
    path: Path
    site: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.path / "bin" / "media-server"


@pytest.fixture(scope="module")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    path = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", path, cwd=path)
    python = path / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    _run(*pip, "install", "-q", "--no-deps", "--no-index", built.wheel, cwd=path)
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=path).stdout.strip()
    )
    # The dependencies: this venv's, after ours on the path (added once the wheel is in, so that pip never sees
    # another media-server while installing).
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return Venv(path, site)


def test_the_wheel_holds_the_dashboard_the_models_and_their_licences(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    dashboard = {p.relative_to(built.source / "dashboard").as_posix() for p in (built.source / "dashboard").rglob("*")}
    assert dashboard and {f"media_server/dashboard/{n}" for n in dashboard if "." in n} <= names
    for model in ("models/vad/weights/silero_vad.onnx", "models/diarization/weights/resemblyzer_encoder.npz"):
        assert model in names and str(Path(model).parent / "LICENSE") in names
    assert "License-Expression: Apache-2.0" in metadata
    licences = {n.split(".dist-info/licenses/", 1)[1] for n in names if ".dist-info/licenses/" in n}
    assert licences == {"LICENSE", "models/vad/weights/LICENSE", "models/diarization/weights/LICENSE"}
    assert not any(n.startswith(("tests/", "benchmarks/", "dashboard/")) for n in names)


def test_declared_dependencies_are_satisfied_without_downloading(built: Built, venv: Venv) -> None:
    report = venv.path / "report.json"
    pip = (sys.executable, "-m", "pip", "--python", venv.python)
    # --no-index: a dependency that the installed ones do not satisfy (a bound too tight, a package missing from
    # the test environment) fails here instead of being fetched.
    _run(*pip, "install", "--dry-run", "--no-index", "--report", report, built.wheel, cwd=venv.path)
    would_install = {item["metadata"]["name"] for item in json.loads(report.read_text())["install"]}
    assert would_install <= {"media-server"}, f"not satisfied by the installed packages: {would_install}"


@dataclass
class Running:
    url: str
    ws_url: str
    admin_key: str
    log: Path


@pytest.fixture(scope="module")
def served(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # not the source tree: nothing can be imported from there
    data = elsewhere / "data"
    key = _run(venv.cli, "keys", "create", "--team", "acme", "--role", "admin", "--data-dir", data, cwd=elsewhere)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {
        "MEDIA_SERVER_GRPC__PORT": str(free_port()),
        "MEDIA_SERVER_LOG_LEVEL": "info",
        "PYTHONWARNINGS": "default::DeprecationWarning",  # shown, so that the test sees none from websockets
    }
    log = elsewhere / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv.cli), "serve", "--port", str(port), "--data-dir", str(data)],
            cwd=elsewhere,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/health", process, log, 90)
        yield Running(url, f"ws://127.0.0.1:{port}", key.stdout.strip().splitlines()[-1], log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_installed_server_is_the_wheels_and_serves_the_dashboard(venv: Venv, served: Running) -> None:
    where = _run(
        venv.python,
        "-c",
        "import media_server, models; print(media_server.__file__); print(models.__file__)",
        cwd=venv.path,
    ).stdout.split()
    assert all(Path(w).is_relative_to(venv.site) for w in where), where
    page = httpx.get(f"{served.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == (venv.site / "media_server" / "dashboard" / "index.html").read_text()
    assert httpx.get(f"{served.url}/dashboard/app.js", timeout=10).status_code == 200


def test_a_call_through_the_installed_server_is_transcribed(venv: Venv, served: Running, tmp_path: Path) -> None:
    require_flite()
    text = SCRIPT[1]  # "Our finance team already uses Brightlane for invoicing."
    pcm, rate = speak(text, "slt")
    silence = np.zeros(rate, dtype=np.int16)
    rep = np.concatenate([silence, pcm, silence])
    write_wav(tmp_path / "call.wav", Recording([rep, np.zeros_like(rep)], rate))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MEDIA_SERVER_TOKEN": served.admin_key}
    out = subprocess.run(
        [
            str(venv.cli),
            "stream",
            str(tmp_path / "call.wav"),
            "--url",
            served.ws_url,
            "--protocol",
            "l16",
            "--speed",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    said = " ".join(line.split("rep: ", 1)[1] for line in out.stdout.splitlines() if " rep: " in line).lower()
    assert sum(word in said for word in ("finance", "team", "already", "uses", "invoicing")) >= 3, out.stdout
    assert "call ended: completed" in out.stdout
    # Speech was found by the VAD the wheel ships, and the server's websockets raised no deprecation warning.
    log = served.log.read_text(errors="replace")
    assert "websockets.legacy" not in log and "WebSocketServerProtocol" not in log, log
