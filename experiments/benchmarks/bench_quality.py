"""Quality per CPU minute on the real DRIVE training split (../shared/data/DRIVE/training).

4-fold cross-validation (5 test images per fold, every image tested once). For each fold, two
recipes get the same wall-clock budget on this machine:

* **medseg**: the shipped DRIVE experiment (``experiment=drive_unet``: classic U-Net, 64x64
  patches, BCE + Dice, Adam, cosine schedule, best checkpoint on 2 validation images carved from
  the 15 training images, Gaussian sliding-window prediction), through ``medseg.pipelines.train``.
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
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED_DRIVE, header

sys.path.insert(0, str(REPO))


def folds_of(ids: list[str], k: int = 4) -> list[list[str]]:
    return [ids[i::k] for i in range(k)]


def paired(peer: dict[str, float], med: dict[str, float]):
    """medseg vs peer on the same images: :func:`medseg.report.stats.paired_comparison`."""
    import pandas as pd

    from medseg.report.stats import paired_comparison

    return paired_comparison(pd.Series(peer), pd.Series(med), "MONAI peer", "medseg")


def medseg_fold(train_ids, test_ids, budget_s: float, work: Path) -> dict[str, float]:
    from medseg.pipelines.train import train
    from tests.conftest import compose_cfg

    splits = work / "splits.json"
    val = train_ids[:2]
    splits.write_text(json.dumps({"train": train_ids[2:], "val": val, "test": test_ids}))
    base = ["experiment=drive_unet", "data=drive", f"data.root={SHARED_DRIVE}", f"+data.splits={splits}",
            "data.baseline=null"]
    # calibrate the epoch time with one epoch, then fit the cosine schedule to the budget
    t0 = time.perf_counter()
    cal = work / "calibrate"
    train(compose_cfg("train", base + ["trainer.max_epochs=1", "evaluate=false"], cal), cal)
    epoch_s = time.perf_counter() - t0
    epochs = max(1, int(budget_s / (epoch_s * 1.05)))
    run = work / "run"
    train(compose_cfg("train", base + [f"trainer.max_epochs={epochs}"], run), run)
    import pandas as pd

    per_image = pd.read_csv(run / "per_image.csv", index_col=0)
    return per_image["dice"].to_dict()


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


def run(budget_min: float = 25.0) -> str:
    if not (SHARED_DRIVE / "training").is_dir():
        msg = f"skipped: {SHARED_DRIVE} not present"
        print(msg)
        return header("5. Quality per CPU minute (real DRIVE)") + "\n" + msg + "\n"
    from medseg.data.formats.drive import DriveReader

    ids = DriveReader(SHARED_DRIVE).list_cases("training")
    folds = folds_of(ids)
    per_fold_s = budget_min * 60 / len(folds)
    med, peer = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, test_ids in enumerate(folds):
            train_ids = [c for c in ids if c not in test_ids]
            work = Path(tmp) / f"fold{k}"
            work.mkdir()
            med.update(medseg_fold(train_ids, test_ids, per_fold_s, work))
            peer.update(monai_fold(train_ids, test_ids, per_fold_s))
            print(f"fold {k}: medseg {np.mean([med[c] for c in test_ids]):.4f}  "
                  f"MONAI peer {np.mean([peer[c] for c in test_ids]):.4f}", flush=True)
    a = np.array([peer[c] for c in ids])
    b = np.array([med[c] for c in ids])
    cmp = paired(peer, med)
    lines = [header("5. Quality per CPU minute (real DRIVE, 4-fold CV)"),
             f"Budget {budget_min:g} min per recipe ({per_fold_s / 60:.2f} min per fold), 2 CPU cores; "
             "Dice inside the FOV per image, each of the 20 training images tested once.", "",
             "| recipe | mean Dice | min | max |", "|---|---|---|---|",
             f"| medseg (experiment=drive_unet) | {b.mean():.4f} | {b.min():.4f} | {b.max():.4f} |",
             f"| MONAI peer (UNet 16-256, 2 res units, DiceCE) | {a.mean():.4f} | {a.min():.4f} | {a.max():.4f} |",
             "", f"**medseg - peer: {cmp.diff.mean:+.4f} Dice, 95 % CI [{cmp.diff.low:+.4f}, {cmp.diff.high:+.4f}]** "
             f"(paired bootstrap over images). {cmp.sentence()}",
             ""]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-min", type=float, default=25.0, help="wall-clock minutes per recipe (all folds)")
    run(ap.parse_args().budget_min)
