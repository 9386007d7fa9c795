"""Shared fixtures: the read-only real data beside the checkout (`../shared/data`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TAILSEG_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data. Missing: skipped on a laptop, a failure in CI."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must have ../shared beside the clone")
        pytest.skip(f"{path} not present (real-data tests need ../shared/data)")
    return path


@pytest.fixture(scope="session")
def coco43_json() -> Path:
    return shared_path("coco_sample43", "instances.json")


@pytest.fixture(scope="session")
def coco43_images() -> Path:
    return shared_path("coco_sample43", "images")


@pytest.fixture(scope="session")
def lvis_val100_json() -> Path:
    return shared_path("lvis_v0.5_val100", "lvis_val_100.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
