#!/usr/bin/env bash
# Idempotent set-up: Debian packages, .venv, the package and its extras.
#   scripts/setup.sh          what `digihuman` needs to run (window, landmarks, web server)
#   scripts/setup.sh --test   plus what the test suite needs (dev tools, the llama.cpp server, Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages (we may be root; skip quietly when we are not and they are present) ---
debs=(libportaudio2 xvfb fonts-wqy-zenhei)  # the font: Chinese subtitles in the window and page
# Chromium for the web page tests, driven by playwright from pip (never `playwright install`: no download).
[ $want_tests = 1 ] && debs+=(cmake chromium)
missing=()
for pkg in "${debs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python virtual environment ---
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
  log "creating .venv"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)

# Re-install only when the dependency spec or this script changed.
extras="window,landmarks,server,piper,asr"
[ $want_tests = 1 ] && extras="$extras,dev"
stamp=".venv/.digihuman-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-${extras//,/-}"
if [ ! -f "$stamp" ]; then
  log "installing digihuman[$extras] into .venv"
  "${pip[@]}" install --upgrade pip >/dev/null
  "${pip[@]}" install -e ".[$extras]"
  # mediapipe 0.10.21 is the last release that bundles the FaceMesh model. It declares numpy<2 and
  # opencv-contrib-python, both unneeded here (opencv-contrib would clash with opencv-python-headless).
  "${pip[@]}" install --no-deps "mediapipe==0.10.21"
  touch "$stamp"
fi

if [ $want_tests = 1 ]; then
  # The real OpenAI-compatible server for the adapter tests. No wheel exists: it builds from source once
  # (about 5 minutes on 2 cores); pip's wheel cache makes later installs instant.
  if ! .venv/bin/python -c 'import llama_cpp.server' >/dev/null 2>&1; then
    log "building llama-cpp-python (first time only, ~5 min)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "${pip[@]}" install "llama-cpp-python[server]>=0.3" "gguf>=0.10"
  fi
  # Real model weights for the tests (~720 MB, once, into the test cache outside the repo). Without them
  # the tests that need them skip and say so, so a failure here does not stop the set-up.
  .venv/bin/python scripts/fetch_test_models.py >/dev/null ||
    log "could not fetch the real test models: the tests that need them will skip"
fi
log "ready"
