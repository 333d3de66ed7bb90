"""The README's first command, `make run`, as a user runs it: the Makefile's variables reach the server."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import grpc
import httpx

from tests.conftest import ROOT, free_port, wait_until_serving


def test_make_run_serves_on_the_ports_it_is_given_and_creates_the_first_admin_key(tmp_path: Path) -> None:
    """`make run PORT=… GRPC_PORT=… DATA_DIR=…`: HTTP on PORT, the gRPC API on GRPC_PORT (not the default 50051),
    the data in DATA_DIR with the first start's admin key for team `default`, as the README's first steps say."""
    port, grpc_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "make-run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_SERVER_")}
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}", f"GRPC_PORT={grpc_port}", f"DATA_DIR={data_dir}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the server it starts are stopped together
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health/ready", make, log_path, 120)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)  # the gRPC API listens where it was told
        key = (data_dir / "first-admin-key").read_text().strip()
        assert key.startswith("msk_")
        me = httpx.get(f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        assert me.status_code == 200 and (me.json()["team"], me.json()["role"]) == ("default", "admin"), me.text
        assert f"--grpc-port {grpc_port}" in log_path.read_text()  # the command make ran says so too
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
