"""A clone works anywhere: the test suite's speech data and the benchmarks' default data are found inside the
repository, from a copy of it in a temporary directory with nothing beside it (no ``../shared``, no
``SPEECH_DATA``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_suites_data_is_found_in_a_copy_of_the_repository_alone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "-z", "tests", "benchmarks"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD", "--", *[f.decode() for f in files if f]],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(clone)], input=archive, check=True)
    assert not (tmp_path / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "SPEECH_DATA"}
    env["PYTHONPATH"] = str(clone)  # (the copy's tests and benchmarks; the server's code is the installed one)
    probe = (
        "from pathlib import Path; import tests.speech as s; from benchmarks import call_load as c;"
        "assert Path(s.SPEECH_DIR).is_relative_to(Path.cwd()), s.SPEECH_DIR;"
        "assert Path(c.DEFAULT_SPEECH).is_relative_to(Path.cwd()), c.DEFAULT_SPEECH;"
        "print(len(s.tel8k()), len(c.load_tel8k(c.DEFAULT_SPEECH)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    utterances, loaded = (int(n) for n in out.stdout.split())
    assert utterances >= 7 and loaded == utterances
