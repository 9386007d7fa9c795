"""Greedy matching of score-ordered detections to ground truth, per (image, class) group.

The COCO/LVIS rule, for every area range and IoU threshold t: ground truth outside the area
range (or crowd / `ignore`) is "ignored" and moved after the others (stable); each detection,
best score first, takes the not-yet-matched ground truth with the highest IoU >= t (on equal
IoU the later one wins; once it holds a regular one it never moves to an ignored one). Crowd
regions may be matched again (COCO only).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def match_groups(
    det_start: np.ndarray,  # (G,) first detection of each group in the sorted det arrays
    det_end: np.ndarray,  # (G,)
    gt_index: np.ndarray,  # (Ng,) ground truth of all groups, concatenated in file order
    gt_start: np.ndarray,  # (G,) into gt_index
    gt_end: np.ndarray,  # (G,)
    iou_start: np.ndarray,  # (G,) offset of each group's (dets × gts) IoU block in ious
    ious: np.ndarray,  # (Σ nd·ng,) float64, row-major per group
    gt_area: np.ndarray,  # (N_gt,) float64
    gt_ignore: np.ndarray,  # (N_gt,) bool, ignored regardless of area (crowd, `ignore`)
    gt_crowd: np.ndarray,  # (N_gt,) bool, may be matched repeatedly
    area_lo: np.ndarray,  # (A,)
    area_hi: np.ndarray,  # (A,)
    iou_thrs: np.ndarray,  # (T,)
    num_dets: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns matched (T, A, D) and matched_to_ignored (T, A, D) over sorted detections."""
    t_n, a_n = iou_thrs.shape[0], area_lo.shape[0]
    matched = np.zeros((t_n, a_n, num_dets), np.bool_)
    matched_ig = np.zeros((t_n, a_n, num_dets), np.bool_)
    for g in range(det_start.shape[0]):
        d0, d1 = det_start[g], det_end[g]
        g0, g1 = gt_start[g], gt_end[g]
        nd, ng = d1 - d0, g1 - g0
        if nd == 0 or ng == 0:
            continue
        block = ious[iou_start[g] : iou_start[g] + nd * ng].reshape((nd, ng))
        order = np.empty(ng, np.int64)
        ig = np.empty(ng, np.bool_)
        taken = np.empty(ng, np.bool_)
        for a in range(a_n):
            n = 0
            for pass_ignored in (False, True):  # stable: regular ground truth first
                for j in range(ng):
                    k = gt_index[g0 + j]
                    is_ig = gt_ignore[k] or gt_area[k] < area_lo[a] or gt_area[k] > area_hi[a]
                    if is_ig == pass_ignored:
                        order[n] = j
                        ig[n] = is_ig
                        n += 1
            for t in range(t_n):
                taken[:] = False
                for i in range(nd):
                    best = min(iou_thrs[t], 1 - 1e-10)
                    m = -1
                    for jj in range(ng):
                        j = order[jj]
                        if taken[jj] and not gt_crowd[gt_index[g0 + j]]:
                            continue
                        if m > -1 and not ig[m] and ig[jj]:
                            break
                        if block[i, j] < best:
                            continue
                        best = block[i, j]
                        m = jj
                    if m == -1:
                        continue
                    taken[m] = True
                    matched[t, a, d0 + i] = True
                    matched_ig[t, a, d0 + i] = ig[m]
    return matched, matched_ig
