"""Per-epoch evaluation under DDP: each rank predicts its shard, rank 0 gathers and evaluates,
every rank receives the metrics — and they equal one process's, metric for metric.

Both runs use one thread per process, so every image goes through the same float kernels and
the predictions are bitwise the same; any lost, repeated or misattributed image would change
the numbers. Runs `benchmarks/dist_eval_bench.py --worker`, the trainer's own `run_evaluation`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_train_e2e import SMALL

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "benchmarks" / "dist_eval_bench.py"
OVERRIDES = [
    *SMALL,
    "data.synth.train_images=4",
    "data.synth.val_images=9",
    "eval.challenge=true",
    "eval.iou_types=[segm,bbox]",
]


def _run(out: Path, processes: int) -> list[dict]:
    args = [str(WORKER), "--worker", str(out), "--digest", "tiny", *OVERRIDES]
    if processes > 1:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(processes), *args]
    else:
        cmd = [sys.executable, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"rank{k}.json").read_text()) for k in range(processes)]


@pytest.mark.slow
def test_two_ranks_evaluate_like_one_process(tmp_path: Path) -> None:
    (one,) = _run(tmp_path / "one", 1)
    two = _run(tmp_path / "two", 2)
    assert one["world"] == 1 and [r["world"] for r in two] == [2, 2]
    assert one["images"] == 9
    m = one["metrics"]
    assert {"segm", "challenge2021"} <= set(m)
    assert m["bbox"]["AP"] > 0  # random weights still hit a few boxes
    for rank in two:  # rank 0 evaluated; rank 1 received the same numbers
        assert rank["metrics"] == m
    # rank 0 gathered every image once (rank r predicted images r, r + 2, ...), each with the
    # same detections as the single process; the other rank holds none
    gathered = sorted(map(tuple, two[0]["gathered"]))
    assert [g[0] for g in gathered] == sorted(g[0] for g in one["gathered"])
    assert len({g[0] for g in gathered}) == 9
    assert gathered == sorted(map(tuple, one["gathered"]))
    assert sum(g[1] for g in gathered) > 9 * 10  # detections to compare, not empty lists
    assert two[1]["gathered"] == []
