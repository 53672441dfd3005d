"""How much Dice is left above a vessel recipe (issue #18): bounds measured on the runs
``bench_vessel_recipe.py --keep`` kept, without training anything.

For the 4-fold CV of the real DRIVE training split (every image tested once by the model of the fold
that did not train on it), the first recipe named in ``--models`` is the reference, and the script
scores against it, paired over the 20 images:

* every other recipe alone;
* **the ensemble** of all the named recipes (mean of their probabilities, threshold 0.5). Two seeds of
  one recipe make a two-model ensemble that cost twice the training budget: an upper bound on what
  variance reduction gives at the budget of one;
* **an oracle per-image threshold** on the reference: each test image at the threshold (0.20-0.80)
  that maximises its own Dice. It reads the test labels, so it is a ceiling for anything that only
  moves the decision (thresholds chosen on validation, calibration, per-image adaptation), not a recipe;
* **an area-matched threshold** on the reference, label-free: each image at the threshold whose mask
  has as many pixels as the sum of its probabilities (the model's own expected vessel area);
* **where the errors are** on the reference: the share of false positives within 1.5 px of an
  annotated vessel, of false negatives on an annotated vessel's outer pixels (no further than 1 px
  from the background), and of either within 10 px of the FOV border.

    python experiments/benchmarks/vessel_headroom.py --runs KEPT/tmpA KEPT/tmpB \\
        --models p96_d3 p96_d3_s7 [--tta] [--out headroom.md]

``--runs``: folders holding ``fold0/<recipe>/run`` ...; a recipe is read from the first folder that
has it. CPU only, a few minutes; skips cleanly when ../shared is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vessel_recipe import paired
from common import REPO, SHARED_DRIVE, header

sys.path.insert(0, str(REPO))

THRESHOLDS = np.round(np.arange(0.20, 0.801, 0.05), 2)
FOLDS = 4


def _dice(p: np.ndarray, t: np.ndarray, roi: np.ndarray, thr: float) -> float:
    from medseg.metrics import dice

    m = torch.from_numpy(p > thr)[None, None]
    return float(dice(m, torch.from_numpy(t)[None, None], roi=torch.from_numpy(roi)[None, None])[0, 0])


def _area_threshold(p: np.ndarray, roi: np.ndarray) -> float:
    """The threshold whose mask inside ``roi`` has ``round(sum(p))`` pixels."""
    v = np.sort(p[roi])[::-1]
    n = int(round(float(v.sum())))
    return float(v[min(n, len(v) - 1)])


def fold_probs(run: Path, tta: bool) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(case_id, foreground probabilities, target, roi)`` of a run's test images."""
    from medseg.evaluation import foreground_probs, model_probs
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.eval import load_model, load_run_config

    cfg = load_run_config(run)
    dm = build_datamodule(cfg)
    module, _ = load_model(cfg, dm, run, "best")
    fn = model_probs(module, tta)
    out = []
    for c in dm.cases["test"]:
        p = foreground_probs(module.task, fn(c)).float().numpy()[0]
        out.append((c.case_id, p, np.asarray(c.mask).squeeze().astype(bool), np.asarray(c.roi).squeeze().astype(bool)))
    return out


def find_run(roots: list[Path], k: int, model: str) -> Path:
    for r in roots:
        run = r / f"fold{k}" / model / "run"
        if (run / ".hydra" / "config.yaml").is_file():
            return run
    raise SystemExit(f"no kept run of {model!r} for fold {k} under {', '.join(map(str, roots))}")


def error_anatomy(p: np.ndarray, t: np.ndarray, roi: np.ndarray, thr: float = 0.5) -> dict[str, int]:
    pred = p > thr
    fp, fn = pred & ~t & roi, ~pred & t & roi
    near_vessel = ndi.distance_transform_edt(~t) <= 1.5
    outer = t & (ndi.distance_transform_edt(t) <= 1.0)
    border = roi & (ndi.distance_transform_edt(roi) <= 10)
    return {"fp": int(fp.sum()), "fn": int(fn.sum()), "fp_near_vessel": int((fp & near_vessel).sum()),
            "fn_outer": int((fn & outer).sum()), "err_border": int(((fp | fn) & border).sum())}


def run(roots: list[Path], models: list[str], tta: bool) -> str:
    from tests.conftest import compose_cfg

    compose_cfg("train", ["experiment=drive_unet"], Path(tempfile.mkdtemp()))  # a Hydra context for ${hydra:...}
    rows: dict[str, dict[str, float]] = {}
    oracle_thr: list[float] = []
    area_thr: list[float] = []
    anatomy: dict[str, int] = {}
    ref = models[0]
    for k in range(FOLDS):
        per_model = [fold_probs(find_run(roots, k, m), tta) for m in models]
        for i, cases in enumerate(zip(*per_model)):
            case_id, _, t, roi = cases[0]
            assert all(c[0] == case_id for c in cases), "the runs' folds differ"
            probs = [c[1] for c in cases]
            for m, p in zip(models, probs):
                rows.setdefault(m, {})[case_id] = _dice(p, t, roi, 0.5)
            ens = np.mean(probs, axis=0)
            rows.setdefault("ensemble", {})[case_id] = _dice(ens, t, roi, 0.5)
            sweep = [_dice(probs[0], t, roi, th) for th in THRESHOLDS]
            rows.setdefault("oracle", {})[case_id] = max(sweep)
            oracle_thr.append(float(THRESHOLDS[int(np.argmax(sweep))]))
            a = _area_threshold(probs[0], roi)
            area_thr.append(a)
            rows.setdefault("area", {})[case_id] = _dice(probs[0], t, roi, a)
            for key, v in error_anatomy(probs[0], t, roi).items():
                anatomy[key] = anatomy.get(key, 0) + v
    view = " with the 8-view TTA" if tta else ""
    labels = {m: f"`{m}`{view}" for m in models}
    labels["ensemble"] = f"ensemble of {' + '.join(f'`{m}`' for m in models)}{view} (mean probability)"
    labels["oracle"] = f"`{ref}`, oracle per-image threshold (reads the test labels: a ceiling, not a recipe)"
    labels["area"] = f"`{ref}`, area-matched per-image threshold (label-free)"
    lines = [header("Headroom above a vessel recipe (real DRIVE, 4-fold CV)"), "",
             f"Reference: `{ref}`{view}; kept runs: {', '.join(str(r) for r in roots)}.", "",
             f"| scored | Dice (per image) | vs `{ref}` [95 % CI] | images better |", "|---|---|---|---|"]
    for key, label in labels.items():
        if key == ref:
            lines.append(f"| {label} | {np.mean(list(rows[key].values())):.4f} | -- | -- |")
            continue
        c = paired(rows[ref], rows[key], ref, key)
        better = sum(rows[key][i] > rows[ref][i] for i in rows[ref])
        lines.append(f"| {label} | {np.mean(list(rows[key].values())):.4f} | {c.diff.mean:+.4f} "
                     f"[{c.diff.low:+.4f}, {c.diff.high:+.4f}] | {better} of {len(rows[ref])} |")
    lines += ["", f"- Oracle thresholds per image: {', '.join(f'{v:.2f}' for v in oracle_thr)}.",
              f"- Area-matched thresholds: {min(area_thr):.2f}-{max(area_thr):.2f}.",
              f"- Errors of `{ref}` at 0.5, all 20 images: {anatomy['fp']} false positives, "
              f"{100 * anatomy['fp_near_vessel'] / anatomy['fp']:.0f} % of them within 1.5 px of an annotated vessel; "
              f"{anatomy['fn']} false negatives, {100 * anatomy['fn_outer'] / anatomy['fn']:.0f} % of them on a "
              f"vessel's outer pixels; {100 * anatomy['err_border'] / (anatomy['fp'] + anatomy['fn']):.0f} % of all "
              "errors within 10 px of the FOV border."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", required=True, help="kept folders holding fold0/, ...")
    ap.add_argument("--models", nargs="+", required=True, help="recipes (the first is the reference)")
    ap.add_argument("--tta", action="store_true", help="score every model with the 8-view TTA")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    a = ap.parse_args()
    if not SHARED_DRIVE.is_dir():
        print(f"skipped: {SHARED_DRIVE} is absent (the real DRIVE split is needed)")
        raise SystemExit(0)
    text = run(a.runs, a.models, a.tta)
    print(text)
    if a.out:
        a.out.write_text(text)
