"""The converter's tensor transforms against the operations they stand for, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tailseg.cli.main import main
from tailseg.convert.checkpoint import Foreign, load_foreign
from tailseg.convert.keymap import Report, Rule, apply_rules, fit_model
from tailseg.convert.mmdet import unfold_to_concat_vector, unfold_to_concat_weight
from tailseg.errors import CheckpointError, ConversionError
from tailseg.models.backbones.swin import PatchMerging


def test_patch_merging_permutation_equals_unfold_merging() -> None:
    """mmdetection's PatchMerging: nn.Unfold(2, stride 2) → LayerNorm(4C) → Linear(4C, 2C);
    tailseg's (the official) with the permuted weights gives the same output, odd sizes too."""
    g = torch.Generator().manual_seed(0)
    c, h, w = 3, 5, 6
    x = torch.randn(2, h * w, c, generator=g, dtype=torch.float64)
    weight = torch.randn(2 * c, 4 * c, generator=g, dtype=torch.float64)
    gamma = torch.randn(4 * c, generator=g, dtype=torch.float64)
    beta = torch.randn(4 * c, generator=g, dtype=torch.float64)
    grid = F.pad(x.view(2, h, w, c).permute(0, 3, 1, 2), (0, w % 2, 0, h % 2))  # (B, C, H', W')
    unfolded = F.unfold(grid, kernel_size=2, stride=2).transpose(1, 2)  # (B, L, 4C) c-major
    expected = F.layer_norm(unfolded, (4 * c,), gamma, beta) @ weight.t()

    merge = PatchMerging(c).double()
    merge.reduction.weight.data = unfold_to_concat_weight(weight)
    merge.norm.weight.data = unfold_to_concat_vector(gamma)
    merge.norm.bias.data = unfold_to_concat_vector(beta)
    torch.testing.assert_close(merge(x, h, w), expected, rtol=0, atol=1e-12)
    assert not torch.allclose(weight, unfold_to_concat_weight(weight))  # a real permutation


def test_rules_map_drop_and_name_unknown_keys() -> None:
    rules = [Rule(r"a\.(\d)\.w", r"b.\1.weight"), Rule(r"junk", None, "not needed")]
    report = Report("src.pth", "test")
    out, origin = apply_rules({"a.1.w": torch.ones(2), "junk": torch.ones(1)}, rules, report)
    assert list(out) == ["b.1.weight"] and origin == {"b.1.weight": "a.1.w"}
    assert report.dropped == [("junk", "not needed")]
    with pytest.raises(ConversionError, match=r"src\.pth: zz \(3,\): no rule maps this key"):
        apply_rules({"zz": torch.ones(3)}, rules, Report("src.pth", "test"))


def test_fit_model_names_missing_extra_and_mis_shaped_keys() -> None:
    model = {"b.1.weight": torch.zeros(2), "b.2.weight": torch.zeros(3, dtype=torch.float64)}
    origin = {"b.1.weight": "a.1.w", "b.2.weight": "a.2.w"}
    report = Report("src.pth", "test")
    out = fit_model(
        {"b.1.weight": torch.ones(2), "b.2.weight": torch.ones(3)}, origin, model, report
    )
    assert out["b.2.weight"].dtype == torch.float64
    with pytest.raises(ConversionError, match=r"no weights for tailseg's b\.2\.weight \(3,\)"):
        fit_model({"b.1.weight": torch.ones(2)}, origin, model, Report("src.pth", "test"))
    filled = fit_model(
        {"b.1.weight": torch.ones(2)},
        origin,
        model,
        report,
        {r"b\.2\..*": ("zero", torch.zeros_like)},
    )
    assert filled["b.2.weight"].tolist() == [0, 0, 0] and ("b.2.weight", "zero") in report.filled
    with pytest.raises(ConversionError, match=r"a\.2\.w \(4,\) → b\.2\.weight: .* has \(3,\)"):
        fit_model({"b.1.weight": torch.ones(2), "b.2.weight": torch.ones(4)}, origin, model, report)
    with pytest.raises(ConversionError, match=r"a\.9\.w → b\.9\.weight: the config's model has no"):
        fit_model(
            {**model, "b.9.weight": torch.ones(1)}, {**origin, "b.9.weight": "a.9.w"}, model, report
        )


class HistoryBuffer:  # stands for an mmengine class the reader cannot import
    def __init__(self) -> None:
        import numpy as np

        self.data = np.arange(3.0)


class Malicious:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # what a hostile file would do on load: call something
        return (Path.touch, (self.target,))


def test_foreign_objects_load_inert(tmp_path: Path) -> None:
    """mmengine's checkpoints hold objects of its own: loaded as placeholders; a file that
    would call a function on load is refused, and nothing is called."""
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "message_hub": {"h": HistoryBuffer()}}, path)
    ck = load_foreign(path)
    assert torch.equal(ck["state_dict"]["w"], torch.ones(2))
    assert isinstance(ck["message_hub"]["h"], Foreign)  # inert: its state, no behaviour
    hostile = tmp_path / "hostile.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "x": Malicious(tmp_path / "pwned")}, hostile)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_foreign(hostile)
    assert not (tmp_path / "pwned").exists()


def test_convert_cli_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    args = ["convert", "mmdet", str(bad), "--config", "tiny", "--out", str(tmp_path / "o.pt")]
    assert main(args) == 2
    assert f"error: {bad}: cannot read" in capsys.readouterr().err
    semantic = tmp_path / "semantic.pth"
    torch.save({"state_dict": {"roi_head.semantic_head.conv.weight": torch.ones(1)}}, semantic)
    assert main([*args[:2], str(semantic), *args[3:]]) == 2
    assert "semantic head" in capsys.readouterr().err
