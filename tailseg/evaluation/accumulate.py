"""Precision/recall per class from matched detections (the COCO/LVIS accumulation).

For one class, area range and IoU threshold: detections in descending score order (ties:
ascending image id, then results-file order) that are not ignored give cumulative TP and FP;
recall = TP / #non-ignored GT, precision = TP / (TP + FP + eps) made non-increasing from the
right; precision is read at 101 recall points with a left binary search (0 past the last
recall). Ignored detections (matched to ignored GT, or unmatched and outside the area range or
of a not-exhaustively-annotated class) are dropped first, which leaves every value unchanged.
"""

from __future__ import annotations

import numpy as np
from numba import njit

EPS = float(np.spacing(1))


@njit(cache=True)
def accumulate(
    order: np.ndarray,  # (D',) sorted detection indices: class, then score desc, image, index
    cls_start: np.ndarray,  # (K,) segment of each class in `order`
    cls_end: np.ndarray,  # (K,)
    det_rank: np.ndarray,  # (D,) rank of a detection in its (image, class) group
    max_rank: int,  # keep detections with rank < max_rank (COCO maxDets)
    matched: np.ndarray,  # (T, A, D) bool
    matched_ig: np.ndarray,  # (T, A, D) bool
    det_area: np.ndarray,  # (D,)
    det_not_exhaustive: np.ndarray,  # (D,) bool
    num_gt: np.ndarray,  # (K, A) non-ignored ground truth
    area_lo: np.ndarray,  # (A,)
    area_hi: np.ndarray,  # (A,)
    rec_thrs: np.ndarray,  # (R,)
) -> tuple[np.ndarray, np.ndarray]:
    """Returns precision (T, R, K, A) and recall (T, K, A); -1 where a class has no GT."""
    t_n, a_n = matched.shape[0], matched.shape[1]
    k_n, r_n = cls_start.shape[0], rec_thrs.shape[0]
    precision = -np.ones((t_n, r_n, k_n, a_n))
    recall = -np.ones((t_n, k_n, a_n))
    longest = 0
    for k in range(k_n):
        longest = max(longest, cls_end[k] - cls_start[k])
    rc = np.empty(longest + 1)
    pr = np.empty(longest + 1)
    for k in range(k_n):
        for a in range(a_n):
            n_gt = num_gt[k, a]
            if n_gt == 0:
                continue
            for t in range(t_n):
                tp = 0.0
                fp = 0.0
                n = 0
                for j in range(cls_start[k], cls_end[k]):
                    d = order[j]
                    if det_rank[d] >= max_rank:
                        continue
                    if matched[t, a, d]:
                        if matched_ig[t, a, d]:
                            continue
                        tp += 1.0
                    else:
                        if det_area[d] < area_lo[a] or det_area[d] > area_hi[a]:
                            continue
                        if det_not_exhaustive[d]:
                            continue
                        fp += 1.0
                    rc[n] = tp / n_gt
                    pr[n] = tp / (fp + tp + EPS)
                    n += 1
                recall[t, k, a] = rc[n - 1] if n > 0 else 0.0
                for i in range(n - 1, 0, -1):
                    if pr[i] > pr[i - 1]:
                        pr[i - 1] = pr[i]
                i = 0
                for r in range(r_n):
                    while i < n and rc[i] < rec_thrs[r]:
                        i += 1
                    precision[t, r, k, a] = pr[i] if i < n else 0.0
    return precision, recall
