"""A non-editable install (`pip install .`, a wheel) is complete: configs and data ship inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]


@pytest.mark.slow
def test_a_wheel_install_runs_a_named_config_outside_the_source_tree(tmp_path: Path) -> None:
    built = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), REPO],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tailseg-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = REPO / "tailseg" / "configs"
    shipped = {f"tailseg/configs/{p.relative_to(configs)}" for p in configs.rglob("*.yaml")}
    assert len(shipped) >= 30 and shipped <= names  # with fuxi2021/'s rows, tables and scales
    assert "tailseg/data/resources/lvis_v1_category_stats.json" in names

    # a fresh environment: tailseg only from the wheel, its dependencies from this one
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    installed = subprocess.run(
        [*PIP, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "_deps.pth").write_text("\n".join(deps) + "\n")  # a path list: no editable hooks

    code = "import tailseg, sys; from tailseg.cli.main import main; print(tailseg.__file__); "
    code += "sys.exit(main(['model', 'tiny']))"
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith(str(site / "tailseg" / "__init__.py"))
    assert "HTC, resnet-26 backbone, FPN 64, 40 classes" in ran.stdout  # the tiny config

    # the report's tables, rows and scales resolve from the installed package
    code = "import sys; from tailseg.cli.main import main; "
    code += "sys.exit(main(['ablate', 'table5', '--out', 'study', '--dry-run', '--seeds', '1']))"
    ran = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "train   mask_scoring" in ran.stdout and "predict dets1000" in ran.stdout
