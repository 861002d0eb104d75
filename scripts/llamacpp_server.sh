#!/usr/bin/env bash
# Serve a GGUF model with llama-cpp-python's OpenAI-compatible server (default: the tiny random test model).
# Usage: scripts/llamacpp_server.sh [PORT] [MODEL.gguf]   then: llm.backend=openai, llm.url=http://127.0.0.1:PORT/v1
# Needs: .venv/bin/pip install 'llama-cpp-python[server]' gguf   (CMAKE_ARGS="-DGGML_NATIVE=OFF" for a portable build)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PORT="${1:-8080}"
MODEL="${2:-$("$PYTHON" scripts/build_test_gguf.py)}"
exec "$PYTHON" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --n_ctx 512 --model_alias tiny
