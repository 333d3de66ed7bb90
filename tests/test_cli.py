"""The `media-server` command line, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from media_server.client.wav import Recording, write_wav
from tests.conftest import BIN, Server
from tests.speech import program, stereo, tel8k, wer


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)


def test_keys_create_prints_the_key_last(tmp_path: Path) -> None:
    out = run("keys", "create", "--team", "acme", "--role", "manager", "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("msk_") and len(lines[-1]) > 40
    assert "manager" in lines[0] and "acme" in lines[0]
    bad = run("keys", "create", "--team", "no spaces!", "--role", "rep", "--data-dir", str(tmp_path))
    assert bad.returncode == 2 and "team must be" in bad.stderr
    wrong_role = run("keys", "create", "--team", "acme", "--role", "owner", "--data-dir", str(tmp_path))
    assert wrong_role.returncode != 0 and "invalid choice" in wrong_role.stderr


def test_transcribe_prints_the_transcript_of_mono_and_stereo_files(tmp_path: Path) -> None:
    utts = tel8k()
    mono = program(utts[:3])
    write_wav(tmp_path / "mono.wav", Recording([mono.pcm], 8000))
    out = run("transcribe", str(tmp_path / "mono.wav"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("[")
    assert wer([u.ref for _, _, u in mono.spans], [line.split("]", 1)[1] for line in lines]) <= 0.15

    rep, customer = program(utts[3:5]), program(utts[5:])
    write_wav(tmp_path / "stereo.wav", stereo(rep, customer))
    out = run("transcribe", str(tmp_path / "stereo.wav"))
    assert out.returncode == 0, out.stderr
    said = {"rep": [], "customer": []}
    for line in out.stdout.strip().splitlines():
        speaker, text = line.split("] ", 1)[1].split(": ", 1)
        said[speaker].append(text)
    assert wer([u.ref for _, _, u in rep.spans], said["rep"]) <= 0.15
    assert wer([u.ref for _, _, u in customer.spans], said["customer"]) <= 0.15


def test_transcribe_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "noise.wav").write_bytes(b"RIFF0000WAVEjunk")
    out = run("transcribe", str(tmp_path / "noise.wav"))
    assert out.returncode != 0


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("missing.wav", None, "no such file"),
        ("notes.wav", b"these are my meeting notes, not a recording\n" * 50, "not an audio file"),
        ("empty.mp3", b"", "empty"),
        ("folder", "dir", "directory"),
    ],
)
def test_transcribe_says_in_one_line_what_is_wrong_with_the_file(
    tmp_path: Path, name: str, content: bytes | str | None, says: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    out = run("transcribe", str(path))
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("media-server transcribe: ") and name in lines[0] and says in lines[0], lines[0]


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="runs as root: root reads a file whatever its permissions, so chmod 000 cannot make one unreadable",
)
def test_transcribe_says_in_one_line_that_a_file_cannot_be_read(tmp_path: Path) -> None:
    """A good recording that the user may not read (chmod 000): one line that says so, exit status 1."""
    path = tmp_path / "locked.wav"
    write_wav(path, Recording([program(tel8k()[:1]).pcm], 8000))
    path.chmod(0)
    try:
        out = run("transcribe", str(path))
    finally:
        path.chmod(0o600)
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("media-server transcribe: ") and "locked.wav" in lines[0], lines[0]
    assert "permission denied" in lines[0].lower(), lines[0]


def test_transcribe_reads_an_mp3_and_is_quiet_when_piped(tmp_path: Path) -> None:
    """MP3 (and FLAC, OGG: PyAV reads them); stderr is not a terminal here, so no progress bar is drawn."""
    from tests.encoded import encode

    mono = program(tel8k()[:3])
    (tmp_path / "call.mp3").write_bytes(encode([mono.pcm], 8000, "mp3"))
    out = run("transcribe", str(tmp_path / "call.mp3"))
    assert out.returncode == 0, out.stderr
    assert "transcribing" not in out.stderr and "\r" not in out.stderr
    lines = out.stdout.strip().splitlines()
    assert wer([u.ref for _, _, u in mono.spans], [line.split("]", 1)[1] for line in lines]) <= 0.15


def test_transcribe_draws_its_progress_bar_on_a_real_terminal(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal (as in a shell), stdout piped: the bar is drawn on the terminal and wiped at
    the end; the transcript goes to stdout alone."""
    import pty
    import threading

    mono = program(tel8k()[:8])  # long enough for a bar (10 s or more)
    assert mono.pcm.size / 8000 >= 10
    write_wav(tmp_path / "call.wav", Recording([mono.pcm], 8000))
    master, slave = pty.openpty()
    drawn = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer has gone
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        out = subprocess.run(
            [str(BIN), "transcribe", str(tmp_path / "call.wav")],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=180,
        )
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    terminal = drawn.decode(errors="replace")
    assert out.returncode == 0, terminal
    assert "transcribing call.wav [" in terminal and "x" in terminal, terminal
    assert terminal.endswith("\r\033[K"), terminal  # the bar is wiped: the shell's prompt starts clean
    assert "transcribing" not in out.stdout and "\r" not in out.stdout
    lines = out.stdout.strip().splitlines()
    assert wer([u.ref for _, _, u in mono.spans], [line.split("]", 1)[1] for line in lines]) <= 0.15


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    import io

    from media_server.transcribe import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = ProgressBar("call.mp3", 300.0, terminal)
    bar(150.0)
    drawn = terminal.getvalue()
    assert drawn.startswith("\rtranscribing call.mp3 [") and " 50% " in drawn and "2:30 / 5:00" in drawn
    bar.done()
    assert terminal.getvalue().endswith("\r\033[K")
    piped = io.StringIO()
    quiet = ProgressBar("call.mp3", 300.0, piped)
    quiet(150.0)
    quiet.done()
    assert piped.getvalue() == ""
    assert not ProgressBar("short.wav", 4.0, Terminal()).enabled  # a short file needs no bar


@pytest.mark.e2e
@pytest.mark.parametrize("protocol", ["twilio", "l16"])
def test_stream_plays_a_file_and_prints_the_live_transcript(server: Server, tmp_path: Path, protocol: str) -> None:
    rep, customer = program(tel8k()[:2]), program(tel8k()[2:4])
    write_wav(tmp_path / "call.wav", stereo(rep, customer))
    args = ["stream", str(tmp_path / "call.wav"), "--url", server.ws_url, "--protocol", protocol]
    out = run(*args, "--token", server.keys["ingest"], "--speed", "3", "--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "server closed with 1000" in out.stdout
    assert "shows the key to every user" in out.stderr  # (on the command line: a warning)
    key_file = tmp_path / "key"
    key_file.write_text(server.keys["ingest"] + "\n")
    out = run(*args, "--token-file", str(key_file), "--speed", "3", "--quiet")
    assert out.returncode == 0 and "warning" not in out.stderr, out.stdout + out.stderr
    out = run(*args, "--speed", "3", "--quiet")  # (no MEDIA_SERVER_TOKEN in the tests' environment)
    assert out.returncode == 2 and "MEDIA_SERVER_TOKEN" in out.stderr
    # With a key that may read, it prints the call's transcript as it happens.
    out = run(*args, "--token", server.keys["admin"], "--speed", "3", "--header")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "call ended: completed (stop)" in lines
    rep_lines = [line.split("rep: ", 1)[1] for line in lines if " rep: " in line]
    assert wer([u.ref for _, _, u in rep.spans], rep_lines) <= 0.15


def test_module_entry_point_shows_help() -> None:
    out = subprocess.run([sys.executable, "-m", "media_server", "serve", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--grpc-port", "--data-dir", "--config"):
        assert flag in out.stdout
