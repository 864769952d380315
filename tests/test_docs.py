"""The project's own documents: what they cite must be in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A background file outside the repository: the project's design notes (`METHODS.md`, `DESIGN.md`,
# `STYLE.md`), the paper transcripts (`tailor-paper.md`, ...), or any path under a `shared/` folder
# (`shared/papers/...`, `../shared/...`). "shared/private" (MISA's encoders) is prose.
FOREIGN = re.compile(r"\b(?:METHODS|DESIGN|STYLE)\.md|[\w-]+-(?:paper|slides)\.md|[\w-]+-poster\.txt"
                     r"|(?<![\w-])shared/(?!private\b)")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_pattern_catches_what_it_must():
    for bad in ("see METHODS.md", "(shared/papers/tailor-paper.md)", "../shared/DESIGN.md", "/work/shared/x",
                "DESIGN.md, \"Synthetic twins\"", "robmmr-poster.txt", "univa-slides.md"):
        assert FOREIGN.search(bad), bad
    for fine in ("shared/private encoders", "a shared encoder", "overshared/x"):
        assert not FOREIGN.search(fine), fine


def test_no_tracked_file_cites_a_file_users_do_not_have():
    offenders = []
    for path in _tracked_files():
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if FOREIGN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "cites a file outside the repository:\n" + "\n".join(offenders)


def test_docs_links_point_at_files_that_exist():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
    for module in (ROOT / "mmerbench" / "data" / "readers").glob("*.py"):
        if "docs/formats.md" in module.read_text(encoding="utf-8"):
            assert (ROOT / "docs" / "formats.md").is_file()
