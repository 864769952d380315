"""The parity suite: our models against the authors' code, run as `pytest -m parity`.

Skipped unless ``$MMERBENCH_AUTHORS_CODE`` names a folder holding the authors'
repositories, one sub-folder each, named as the repository (TAILOR,
Multimodal-Transformer, MISA, HHMPN, MMER, UniVA, CARAT). Their code is driven
from where it lies; the fixes it needs to run under torch 2 on a CPU are made
by each test's adapter at import time, never by editing their files.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ENV = "MMERBENCH_AUTHORS_CODE"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.parity)


def authors_repo(name: str) -> Path:
    """The authors' repository ``name`` under ``$MMERBENCH_AUTHORS_CODE``; the test is skipped without it."""
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"${ENV} is not set (a folder with the authors' repositories)")
    path = Path(root).expanduser() / name
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@contextmanager
def on_path(folder: Path, *drop: str):
    """Import from ``folder`` first, and forget modules named ``drop`` (top-level names the repos share,
    e.g. ``src`` or ``modules``) before and after, so two repositories never see each other's."""
    def forget():
        for name in list(sys.modules):
            if name.split(".")[0] in drop:
                del sys.modules[name]

    forget()
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        forget()
