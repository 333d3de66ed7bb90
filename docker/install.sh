#!/bin/sh
# The image's install steps: the Dockerfile RUNs this, and tests/test_container.py runs it too (into a temporary
# venv), so the recipe is tested where there is no docker.
#
#   docker/install.sh WHEEL VENV
#
# Installs the media-server wheel (models included) with its dependencies into the venv VENV (made if missing), then
# checks that what the server loads at start is there: the dashboard, Silero VAD, the speaker encoder and Whisper.
# PYTHON (default python3) is the interpreter whose pip installs; PIP_* variables pass on to pip.
set -eu

wheel="$1"
venv="$2"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv --without-pip "$venv"
fi
"$python" -m pip --python "$venv/bin/python" install --no-cache-dir --no-compile --disable-pip-version-check "$wheel"

"$venv/bin/python" - <<'PY'
from media_server.app import DASHBOARD_DIR
from models.asr.loader import bundled_model_path
from models.diarization import VoiceEncoder
from models.vad import SileroVAD

assert (DASHBOARD_DIR / "index.html").is_file(), f"no dashboard at {DASHBOARD_DIR}"
assert (bundled_model_path() / "model.bin").is_file(), "no bundled Whisper model"
print(f"media-server installed: dashboard {DASHBOARD_DIR}, VAD {SileroVAD().path}, encoder {VoiceEncoder().path}")
PY
"$venv/bin/media-server" --help >/dev/null
