#!/usr/bin/env bash
# Set everything up, then let both shipped characters greet you: MP4 files in out/, and a window when a
# display is available.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p out
play=()
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then play=(--play); fi
.venv/bin/digihuman say "Hello, I'm Ada, your digital human. It's nice to meet you!" -c ada -o out/hello-ada.mp4 "${play[@]}"
.venv/bin/digihuman say "你好，我是小美，很高兴认识你！" -c xiaomei -o out/hello-xiaomei.mp4 "${play[@]}"
echo "Wrote out/hello-ada.mp4 and out/hello-xiaomei.mp4"
