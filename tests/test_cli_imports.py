"""The command line starts without the heavy libraries: `tailseg --help` loads none of torch,
NumPy, numba or matplotlib, and `tailseg eval` never loads torch (nor matplotlib without --plots).

Each case runs in a fresh interpreter, since this test process has imported torch long before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "data" / "eval_fixtures"
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "numpy", "numba", "matplotlib", "PIL", "pycocotools")

# Runs `tailseg ARGS...` through the real entry point, then prints the top-level packages loaded.
PROBE = """
import json, sys
from tailseg.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _probe(*args: str) -> tuple[int, set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["code"], set(report["loaded"]), proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["eval", "--help"], ["train", "--help"]])
def test_help_loads_no_heavy_library(args: list[str]) -> None:
    code, loaded, _ = _probe(*args)
    assert code == 0
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_eval_never_loads_torch(tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    code, loaded, _ = _probe(
        "eval",
        "--gt",
        str(FIXTURES / "gt_n20_d1000_s11.json.gz"),
        "--results",
        str(FIXTURES / "dt_n20_d1000_s11.json.gz"),
        "--protocol",
        "challenge2021",
        "--out",
        str(out),
    )
    assert code == 0
    assert {"numpy", "numba"} <= loaded  # it did evaluate, with the usual core
    assert not loaded & {"torch", "torchvision", "matplotlib", "PIL"}, sorted(loaded)
    # and evaluated right: AP‡ of fixture B by lvis-api's lvis_challenge_2021 branch
    # (tests/data/eval_fixtures/reference.json, id B.apdd)
    assert json.loads(out.read_text())["AP"] == pytest.approx(0.1136419886349537, abs=1e-12)
