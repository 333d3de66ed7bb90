"""The generated Python code of proto/ is committed; it must match the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_is_current(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", f"--python_out={tmp_path}", *protos],
        cwd=ROOT,
        check=True,
    )
    for proto in protos:
        generated = Path(proto).with_name(Path(proto).stem + "_pb2.py")
        fresh = (tmp_path / generated).read_text()
        committed = (ROOT / generated).read_text()
        assert fresh == committed, f"{generated} is stale: run `make proto`"
