"""One run of a study, in its own process: `python -m tailseg.study.worker train|predict ...`.

`tailseg ablate` starts one of these per row and seed (under `torchrun` with `--nproc`), its
output going to the run's `log.txt`, so a crashed run is a failed row, not a failed study.

    train   CONFIG RUN_DIR                     train (resuming what is there), metrics.json
    predict CONFIG MODEL_RUN_DIR RUN_DIR       evaluate the model run's best.pt on the val split
                                               with CONFIG's test-time settings, metrics.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def predict(config: Path, model_run: Path, out: Path, progress: bool = False) -> dict:
    """The model run's selected weights (best.pt) predict its val split with `config`'s `infer`
    settings (TTA included); evaluated as the per-epoch evaluation is, written to
    `out/metrics.json` in the trainer's layout ({"segm": {...}, "challenge2021": {...}})."""
    import torch
    from tqdm import tqdm

    from tailseg.config import Config, load
    from tailseg.data import AnnotationFile, InstanceDataset
    from tailseg.data.splits import split_files
    from tailseg.engine.evaluate import evaluate_predictions, prediction_entry
    from tailseg.inference.predict import detect, load_model
    from tailseg.utils.files import atomic_write_json

    cfg = load(Config, config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(cfg, model_run / "best.pt", device)
    model.eval()
    val_json, val_images = split_files(cfg, "val", model_run / "data", progress=progress)
    val = InstanceDataset(val_json, val_images, allow_outside_root=cfg.data.allow_outside_root)
    gt = AnnotationFile.load(val_json, keep_degenerate=True)
    n = len(val) if cfg.eval.max_images is None else min(cfg.eval.max_images, len(val))
    preds = []
    with torch.no_grad():
        for i in tqdm(range(n), desc="predict", disable=not progress):
            det = detect(model, val.load_image(i).to(device), cfg)
            preds.append(prediction_entry(int(val.image_ids[i]), det, cfg.infer.mask_threshold))
    metrics = evaluate_predictions(gt, preds, cfg, {p["image_id"] for p in preds})
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": str(model_run / "best.pt"), "images": n, **metrics}
    atomic_write_json(out / "metrics.json", result, indent=1)
    return result


def main(argv: list[str] | None = None) -> int:
    import logging

    from tailseg.errors import CheckpointError, ConfigError, DataError, RunDirError, TrainingError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m tailseg.study.worker")
    sub = p.add_subparsers(dest="job", required=True)
    t = sub.add_parser("train")
    t.add_argument("config", type=Path)
    t.add_argument("run_dir", type=Path)
    q = sub.add_parser("predict")
    q.add_argument("config", type=Path)
    q.add_argument("model_run", type=Path)
    q.add_argument("run_dir", type=Path)
    args = p.parse_args(argv)
    try:
        if args.job == "train":
            from tailseg.config import Config, load
            from tailseg.engine.trainer import train

            train(load(Config, args.config), args.run_dir, resume=True, progress=False)
        else:
            predict(args.config, args.model_run, args.run_dir)
    except (ConfigError, DataError, RunDirError, TrainingError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
