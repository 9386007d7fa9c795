"""Shared fixtures: the small real files the tests read, carried in `tests/data` (provenance and
licences in `tests/data/SOURCES.md`), so a clone passes its tests anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


@contextmanager
def float64() -> Iterator[None]:
    """Build and run models in float64 inside: for comparisons of two computations that must
    agree (batched vs one by one, a mirror, another implementation). In float32 such pairs run
    different CPU kernels whose ~1e-7 relative noise can flip a discrete choice (NMS, top-k)
    on some CPUs; float64's ~1e-16 cannot, so the test means the same on every machine."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


def data_path(*parts: str) -> Path:
    """A file under tests/data; a missing one is a broken checkout, so the test fails."""
    path = TEST_DATA.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: tests/data is part of the repository")
    return path


@pytest.fixture(scope="session")
def coco43_json() -> Path:
    return data_path("coco_sample43", "instances.json")


@pytest.fixture(scope="session")
def coco43_images() -> Path:
    return data_path("coco_sample43", "images")


@pytest.fixture(scope="session")
def lvis_val100_json() -> Path:
    return data_path("lvis_v0.5_val100", "lvis_val_100.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
