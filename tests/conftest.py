"""Global fixtures only: a temporary store, the shared datasets folder (skip with reason)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kestrel.store import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _find_datasets() -> Path:
    """``$KESTREL_DATASETS``, else the nearest ``shared/datasets`` beside a parent folder."""
    if "KESTREL_DATASETS" in os.environ:
        return Path(os.environ["KESTREL_DATASETS"])
    for parent in ROOT.parents:
        candidate = parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "datasets"


DATASETS = _find_datasets()


@pytest.fixture
def store() -> Iterator[DuckDBStore]:
    """An empty in-memory store."""
    s = DuckDBStore(":memory:")
    yield s
    s.close()


@pytest.fixture
def datasets() -> Path:
    """``../shared/datasets``; the test is skipped (with the path) when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture
def fixtures() -> Path:
    """The hand-made fixture folder."""
    return FIXTURES
