"""Boundaries against OpenCV's erosion, the reference implementation's own primitive.

lvis-api's challenge branch (lvis/boundary_utils.py) pads the mask by one zero pixel, erodes it
`d` times with a 3×3 kernel (cv2.erode) and subtracts; cv2 here is a test-only dependency.
"""

from __future__ import annotations

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

from tailseg.evaluation.boundary import BoundaryCrop, boundary_iou, boundary_of, dilation_pixels


def cv2_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:-1, 1:-1]
    return mask - eroded


def random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0 : y0 + rng.integers(1, h), x0 : x0 + rng.integers(1, w)] = 1
    m[rng.random((h, w)) < 0.05] ^= 1  # ragged edges and holes
    return m


@pytest.mark.parametrize("d", [1, 2, 3, 7])
def test_boundary_equals_cv2_erosion(d: int) -> None:
    rng = np.random.default_rng(d)
    for _ in range(30):
        m = random_mask(rng, int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        np.testing.assert_array_equal(boundary_of(m, d), cv2_boundary(m, d))


def test_dilation_from_image_diagonal() -> None:
    # eval_fixtures/README.md: 7 px for 256×256 and 200×300, 8 px for 240×320 and 320×240
    assert [dilation_pixels(h, w, 0.02) for h, w in [(256, 256), (200, 300), (240, 320)]] == [
        7,
        7,
        8,
    ]
    assert dilation_pixels(10, 10, 0.02) == 1  # at least one pixel


def test_cropped_boundary_iou_equals_full_image_iou() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        a, b = random_mask(rng, 48, 64), random_mask(rng, 48, 64)
        d = dilation_pixels(48, 64, 0.02)
        ra = mask_utils.encode(np.asfortranarray(a))
        rb = mask_utils.encode(np.asfortranarray(b))
        ba = mask_utils.encode(np.asfortranarray(cv2_boundary(a, d)))
        bb = mask_utils.encode(np.asfortranarray(cv2_boundary(b, d)))
        expected = mask_utils.iou([ba], [bb], [0])[0][0]
        assert boundary_iou(BoundaryCrop(ra, 0.02), BoundaryCrop(rb, 0.02)) == expected
