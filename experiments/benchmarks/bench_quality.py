"""Quality per CPU minute on the real DRIVE training split (../shared/data/DRIVE/training).

4-fold cross-validation (5 test images per fold, every image tested once). For each fold, two
recipes get the same wall-clock budget on this machine:

* **medseg**: the shipped DRIVE experiment (``experiment=drive_unet``: green-weighted gray + CLAHE
  + gamma, classic U-Net, 64x64 patches, BCE + Dice, Adam, cosine schedule, best checkpoint on 2
  validation images carved from the 15 training images, Gaussian sliding-window prediction),
  through ``medseg.pipelines.train``. Its epochs (and so its schedule) are fitted to the budget from
  a 2-epoch calibration of one epoch with its validation, and ``trainer.max_time`` caps the run.
* **MONAI peer**: a careful plain recipe: MONAI ``UNet`` (channels 16-256, strides 2, 2 residual
  units), ``DiceCELoss``, Adam 1e-3, random 128x128 patches in batches of 8 with flips, images
  z-scored inside the FOV, Gaussian sliding-window prediction, the final model.

Dice is computed inside the FOV per image; the report gives both means and the paired difference
with a bootstrap 95 % confidence interval. Skips cleanly when ../shared is absent.

    python experiments/benchmarks/bench_quality.py --budget-min 25   # the issue's protocol (~50 min)
    python experiments/benchmarks/bench_quality.py --budget-min 4    # a shorter check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED_DRIVE, fit_clock_overrides, header, run_medseg

sys.path.insert(0, str(REPO))
from medseg.utils.runtime import max_time_string  # noqa: E402


def folds_of(ids: list[str], k: int = 4) -> list[list[str]]:
    return [ids[i::k] for i in range(k)]


def paired(peer: dict[str, float], med: dict[str, float]):
    """medseg vs peer on the same images: :func:`medseg.report.stats.paired_comparison`."""
    import pandas as pd

    from medseg.report.stats import paired_comparison

    return paired_comparison(pd.Series(peer), pd.Series(med), "MONAI peer", "medseg")


def write_splits(train_ids, test_ids, work: Path, train_on_all: bool = False) -> Path:
    """The fold's ``splits.json``: 2 validation images carved from the training images (none with
    ``train_on_all``)."""
    splits = work / "splits.json"
    work.mkdir(parents=True, exist_ok=True)
    if train_on_all:
        splits.write_text(json.dumps({"train": train_ids, "test": test_ids}))
    else:
        splits.write_text(json.dumps({"train": train_ids[2:], "val": train_ids[:2], "test": test_ids}))
    return splits


def plan_fold(splits: Path, budget_s: float, work: Path) -> Path:
    """``medseg-plan`` on the fold's training and validation images (as nnU-Net plans on the training
    set before its cross-validation; the test images are not read), fitted to ``budget_s``. Runs the
    CLI in a fresh process, as a user would, and returns the config folder holding
    ``experiment/planned.yaml``."""
    conf = work / "plan_conf"
    run_medseg("medseg.cli.plan", ["data=drive", f"data.root={SHARED_DRIVE}", f"+data.splits={splits}",
                                   f"budget_min={budget_s / 60}", "name=planned",
                                   f"out={conf / 'experiment' / 'planned.yaml'}", f"hydra.run.dir={work / 'plan'}"],
               work)
    return conf


def medseg_fold(train_ids, test_ids, budget_s: float, work: Path, overrides: list[str] = (),
                train_on_all: bool = False, planned: bool = False) -> tuple[dict[str, dict[str, float]], str]:
    """Per-image Dice of the medseg recipe on one fold (``medseg`` and, with TTA, ``medseg_no_tta``)
    and a line on the planned and measured training time.

    ``train_on_all``: train on all the fold's training images, without validation (``data.val_fraction=0``;
    for a recipe that keeps its final weights, ``callbacks.model_checkpoint.monitor=null``).
    ``planned``: train the experiment ``medseg-plan`` writes for this fold and budget (:func:`plan_fold`)
    instead of ``experiment=drive_unet``; its epochs are the plan's (no calibration here), and
    ``trainer.max_time`` is the same hard stop."""
    from medseg.pipelines.train import train
    from tests.conftest import compose_cfg

    splits = write_splits(train_ids, test_ids, work, train_on_all)
    if train_on_all:
        overrides = ["data.val_fraction=0", *overrides]
    experiment = ["experiment=drive_unet"]
    if planned:
        t_plan = time.perf_counter()
        conf = plan_fold(splits, budget_s, work)
        t_plan = time.perf_counter() - t_plan
        experiment = [f"hydra.searchpath=[file://{conf}]", "experiment=planned"]
    base = [*experiment, "data=drive", f"data.root={SHARED_DRIVE}", f"+data.splits={splits}",
            "data.baseline=null", *overrides]
    # calibrate the time of one epoch (training + validation + checkpoints; data setup excluded, as for
    # the peer, whose budget starts after its images are loaded): the mean of epochs 2 and 3 of four, from
    # epoch start to epoch start. (Until 2026-12-01 it was the last of two epochs up to the end of the
    # fit, which also counts the end-of-fit plot and checkpoint: 7-11 s planned for 7.5-8.7 s run, so
    # most folds used 70-83 % of their budget.) Then fit the epochs and the schedule to the budget;
    # trainer.max_time is the hard stop.
    run = work / "run"
    if planned:
        cfg = compose_cfg("train", base + [f"+trainer.max_time='{max_time_string(budget_s)}'",
                                           *fit_clock_overrides(run / "clock.json")], run)
        epochs = int(cfg.trainer.max_epochs)
        how = (f"{epochs} epochs of {cfg.data.samples_per_epoch // cfg.data.batch_size} steps planned by medseg-plan "
               f"({t_plan:.0f} s; patch {list(cfg.data.patch_size)}, batch {cfg.data.batch_size}, depth "
               f"{cfg.model.depth})")
    else:
        cal = work / "calibrate"
        train(compose_cfg("train", base + ["trainer.max_epochs=4", "evaluate=false",
                                           *fit_clock_overrides(cal / "clock.json")], cal), cal)
        starts = json.loads((cal / "clock.json").read_text())["epoch_starts_s"]
        epoch_s = (starts[3] - starts[1]) / 2
        epochs = max(1, int(budget_s / (epoch_s * 1.02)))
        cfg = compose_cfg("train", base + [f"trainer.max_epochs={epochs}",
                                           f"+trainer.max_time='{max_time_string(budget_s)}'",
                                           *fit_clock_overrides(run / "clock.json")], run)
        how = f"{epochs} epochs of ~{epoch_s:.1f} s planned"
    train(cfg, run)
    import pandas as pd

    clock = json.loads((run / "clock.json").read_text())
    note = (f"medseg: {how}; fit took {clock['fit_s']:.0f} s "
            f"({clock['epochs']} epochs) for a budget of {budget_s:.0f} s")
    print(note, flush=True)
    scores = {"medseg": pd.read_csv(run / "per_image.csv", index_col=0)["dice"].to_dict()}
    if cfg.get("tta"):  # the same checkpoint without test-time augmentation, for the record
        from medseg.pipelines.build import build_datamodule
        from medseg.pipelines.eval import evaluate_split, load_model

        dm = build_datamodule(cfg)
        module, _ = load_model(cfg, dm, run, "best")
        scores["medseg_no_tta"] = evaluate_split(module, dm, run / "no_tta", overlays=False, tta=False,
                                                 metrics=[]).per_image["dice"].to_dict()
    return scores, note


def monai_fold(train_ids, test_ids, budget_s: float) -> dict[str, float]:
    import torch
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    from medseg.data.formats.drive import DriveReader
    from medseg.data.preprocess import ZScore

    reader = DriveReader(SHARED_DRIVE)
    z = ZScore(within_roi=True)
    train_cases = [z(reader.load_case(c)) for c in train_ids]
    test_cases = [z(reader.load_case(c)) for c in test_ids]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = UNet(spatial_dims=2, in_channels=3, out_channels=2, channels=(16, 32, 64, 128, 256),
               strides=(2, 2, 2, 2), num_res_units=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    p = 128
    t_end = time.perf_counter() + budget_s
    net.train()
    while time.perf_counter() < t_end:
        xs, ys = [], []
        for _ in range(8):
            c = train_cases[rng.integers(len(train_cases))]
            h, w = c.image.shape[1:]
            y0, x0 = rng.integers(h - p + 1), rng.integers(w - p + 1)
            x = c.image[:, y0:y0 + p, x0:x0 + p]
            y = c.mask[None, y0:y0 + p, x0:x0 + p]
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, :, ::-1]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        opt.zero_grad()
        loss = loss_fn(net(torch.from_numpy(np.stack(xs))), torch.from_numpy(np.stack(ys)).long())
        loss.backward()
        opt.step()
    net.eval()
    out = {}
    with torch.no_grad():
        for c in test_cases:
            logits = sliding_window_inference(torch.from_numpy(c.image)[None], (p, p), 8, net, overlap=0.25,
                                              mode="gaussian")
            pred = logits.argmax(1)[0].numpy().astype(bool)
            t = c.mask.astype(bool)
            roi = c.roi
            tp = (pred & t & roi).sum()
            out[c.case_id] = float(2 * tp / ((pred & roi).sum() + (t & roi).sum()))
    return out


LABELS = {
    "medseg": "medseg (experiment=drive_unet)",
    "medseg_no_tta": "medseg, same checkpoints without TTA",
    "peer": "MONAI peer (UNet 16-256, 2 res units, DiceCE)",
}


def run(budget_min: float = 25.0, folds_to_run: list[int] | None = None, overrides: list[str] = (),
        recipes: tuple[str, ...] = ("medseg", "peer"), keep: str | None = None) -> str:
    if not (SHARED_DRIVE / "training").is_dir():
        msg = f"skipped: {SHARED_DRIVE} not present"
        print(msg)
        return header("5. Quality per CPU minute (real DRIVE)") + "\n" + msg + "\n"
    from medseg.data.formats.drive import DriveReader

    ids = DriveReader(SHARED_DRIVE).list_cases("training")
    folds = folds_of(ids)
    per_fold_s = budget_min * 60 / len(folds)
    scores: dict[str, dict[str, float]] = {}
    fold_lines: list[str] = []
    folds_to_run = list(range(len(folds))) if folds_to_run is None else folds_to_run
    scratch = contextlib.nullcontext(tempfile.mkdtemp(dir=keep)) if keep else tempfile.TemporaryDirectory()
    with scratch as tmp:
        for k in folds_to_run:
            test_ids = folds[k]
            train_ids = [c for c in ids if c not in test_ids]
            work = Path(tmp) / f"fold{k}"
            work.mkdir()
            note = ""
            if "medseg" in recipes:
                fold_scores, note = medseg_fold(train_ids, test_ids, per_fold_s, work, overrides)
                for name, s in fold_scores.items():
                    scores.setdefault(name, {}).update(s)
            if "peer" in recipes:
                scores.setdefault("peer", {}).update(monai_fold(train_ids, test_ids, per_fold_s))
            line = f"fold {k}: " + "  ".join(f"{n} {np.mean([v[c] for c in test_ids]):.4f}" for n, v in scores.items())
            print(line, flush=True)
            fold_lines.append(f"- {line}" + (f" ({note})" if note else ""))
    if len(recipes) < 2 or len(folds_to_run) < len(folds):
        return ""  # a tuning run: no comparison table
    cmp = paired(scores["peer"], scores["medseg"])
    lines = [header("5. Quality per CPU minute (real DRIVE, 4-fold CV)"),
             f"Budget {budget_min:g} min of training per recipe ({per_fold_s / 60:.2f} min per fold), 2 CPU cores; "
             "Dice inside the FOV per image, each of the 20 training images tested once. medseg's budget covers "
             "its epochs with their validation passes (epochs fitted to the budget from a 2-epoch calibration, "
             "capped by `trainer.max_time`); the peer's covers its training steps. Neither includes reading the "
             "images or the final test prediction.", "",
             "| recipe | mean Dice | min | max |", "|---|---|---|---|"]
    for name, v in scores.items():
        a = np.array([v[c] for c in ids])
        lines.append(f"| {LABELS[name]} | {a.mean():.4f} | {a.min():.4f} | {a.max():.4f} |")
    lines += ["", f"**medseg - peer: {cmp.diff.mean:+.4f} Dice, 95 % CI [{cmp.diff.low:+.4f}, {cmp.diff.high:+.4f}]** "
              f"(paired bootstrap over images). {cmp.sentence()}"]
    lines += ["", "Per fold (mean Dice of its 5 test images):", "", *fold_lines]
    if "medseg_no_tta" in scores:
        c2 = paired(scores["peer"], scores["medseg_no_tta"])
        lines += ["", f"Without TTA: medseg - peer {c2.diff.mean:+.4f} Dice, 95 % CI [{c2.diff.low:+.4f}, "
                  f"{c2.diff.high:+.4f}]."]
    lines.append("")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-min", type=float, default=25.0, help="wall-clock minutes per recipe (all folds)")
    ap.add_argument("--folds", type=int, nargs="*", help="run only these folds (0-3): a tuning run, no table")
    ap.add_argument("--recipes", nargs="+", default=["medseg", "peer"], choices=["medseg", "peer"])
    ap.add_argument("--keep", help="keep the medseg run folders under this directory")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for the medseg recipe")
    a = ap.parse_args()
    run(a.budget_min, a.folds, a.overrides, tuple(a.recipes), a.keep)
