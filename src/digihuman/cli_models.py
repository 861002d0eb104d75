"""`digihuman models list|pull|path`: the model cache from the command line (registered by cli.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cmd_models_list(args: argparse.Namespace) -> int:
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no models known or cached")
        return 0
    width = max(len(str(r["name"])) for r in rows)
    print(f"{'NAME':<{width}}  {'KIND':<5}  {'SIZE':>8}  {'LICENSE':<26}  PATH")
    for row in rows:
        size = f"{row['size_mb']} MB" if row["size_mb"] is not None else "?"
        where = row["path"] if row["cached"] else "(not downloaded)"
        print(f"{row['name']:<{width}}  {row['kind']:<5}  {size:>8}  {row['license']:<26}  {where}")
    return 0


def model_rows() -> list[dict[str, Any]]:
    """Known models and everything in the cache: name, kind, size_mb, license, cached, path, description."""
    from digihuman.models import cached, known

    present = {m.name: m for m in cached()}
    rows: list[dict[str, Any]] = []
    for ref in known():
        model = present.pop(ref.name, None)
        size_mb = round(model.size_bytes / 1e6) if model else ref.size_mb
        rows.append(
            _row(ref.name, ref.kind, size_mb, ref.license, model is not None, ref.path, ref.description)
        )
    for model in present.values():
        rows.append(
            _row(model.name, model.kind, round(model.size_bytes / 1e6), model.license, True, model.path, "")
        )
    return rows


def _row(
    name: str, kind: str, size_mb: int | None, license: str, cached: bool, path: Path, description: str
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "size_mb": size_mb,
        "license": license,
        "cached": cached,
        "path": str(path),
        "description": description,
    }


def cmd_models_pull(args: argparse.Namespace) -> int:
    from digihuman.models import resolve

    print(resolve(args.name, download=True))
    return 0


def cmd_models_path(args: argparse.Namespace) -> int:
    from digihuman.models import resolve

    print(resolve(args.name, download=False))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `models` and its subcommands to the top-level parser."""
    models = sub.add_parser(
        "models",
        help="List, download and locate model files (LLM, voices, speech recognition).",
        description="List, download and locate model files. NAME is a registry name (see `list`), "
        "piper:VOICE, whisper:SIZE, hf:OWNER/REPO:FILE, or OWNER/REPO/FILE. Files go to "
        "$DIGIHUMAN_HOME/models; HF_ENDPOINT points at a mirror.",
    )
    msub = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    mlist = msub.add_parser(
        "list", help="Known and downloaded models.", description="Known and downloaded models."
    )
    mlist.add_argument("--json", action="store_true", help="print a JSON list")
    mlist.set_defaults(func=cmd_models_list)
    pull = msub.add_parser(
        "pull",
        help="Download a model (once) and print its path.",
        description="Download a model and print its path.",
    )
    pull.add_argument("name", metavar="NAME")
    pull.set_defaults(func=cmd_models_pull)
    path = msub.add_parser(
        "path",
        help="Print a downloaded model's path (exit 3 when it is not downloaded).",
        description="Print a downloaded model's path; exit code 3 when it is not downloaded.",
    )
    path.add_argument("name", metavar="NAME")
    path.set_defaults(func=cmd_models_path)
