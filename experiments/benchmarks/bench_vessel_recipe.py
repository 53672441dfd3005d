"""Vessel recipe ablation on the real DRIVE training split (issue #18 item 4): which of the vessel
literature's tricks improve the shipped DRIVE recipe at the same CPU budget.

The protocol is ``bench_quality.py``'s (its functions are reused): 4-fold cross-validation of the 20
DRIVE training images (5 test images per fold, every image tested once), 2 validation images carved
from each fold's 15 training images, every recipe fitted to the same wall-clock budget per fold (a
2-epoch calibration fits the epochs and the cosine schedule, ``trainer.max_time`` caps the run), and
the MONAI peer trained in the same run for the paired comparison. Variants (one change each):

* ``shipped``: ``experiment=drive_unet`` as shipped (with the weight EMA since the ablation of
  results.md section 9, where ``shipped`` was the recipe without it);
* ``no_ema``: ``callbacks=default``: the recipe without the exponential moving average of the weights
  (decay 0.99; with it, validation, checkpoint selection and the test use the average);
* ``cldice``: ``loss=bce_dice_cldice`` (BCE + Dice + 0.5 soft-clDice);
* ``threshold``: the shipped run's checkpoints scored at the threshold that maximises Dice on the
  fold's validation images (``eval.threshold=auto``): no extra training, so no extra budget;
* ``tta``: the shipped run's checkpoints scored with test-time augmentation (``tta=true``: the mean
  over the 8 flips and 90-degree rotations; inference only, no extra training);
* ``wide_shallow``: U-Net base 32, depth 3 (instead of 16, 4);
* ``patches_fg``: 96x96 patches in batches of 8 (about the pixels per step of 16 x 64x64), 70 %
  of them centred on a vessel pixel (instead of 50 %);
* ``residual``: ``model=residual_unet`` (residual blocks with 1x1-projected shortcuts, same widths);
* ``light_augment``: ``augment=light`` (flips plus +-10 degree rotation, 0.9-1.1 scaling, 5 % shifts
  and mild brightness/contrast, instead of flips alone);
* ``narrow``: U-Net base 12 (instead of 16), depth 4: cheaper steps, more epochs in the budget;
* ``p96_d3``: 96x96 patches, batch 12, depth 3: the experiment ``medseg-plan`` wrote on every fold of
  results.md section 9d, as fixed overrides (no planning-time step timing);
* ``postprocess`` / ``p96_d3_postprocess``: that variant's final weights scored with the
  connected-component rule medseg-select chooses (``choose_postprocessing``: none, keep the largest,
  or remove components under a cut-off of 5-80 px or a percentile of the masks' component sizes),
  with the fold's 2 validation images as its pool; no extra training;
* ``p96_d3_tta``: ``p96_d3``'s final weights scored with the 8-view TTA (as ``tta`` for ``shipped``);
  ``p96_d3_tta_threshold`` also chooses the threshold on the validation images' TTA'd probabilities;
* ``p96_d4`` / ``p128_d3``: the patch of ``p96_d3`` without its shallower net, and a larger patch
  still (128x128, batch 8); ``p96_d3_dice``: ``p96_d3`` trained on soft Dice alone (``loss=dice``);
  ``p96_d3_dice_tta`` / ``p128_d3_tta``: those two scored with the 8-view TTA;
* ``planned``: not a change to the shipped recipe but its replacement: ``medseg-plan`` fingerprints
  the fold's 15 training and validation images and writes an experiment fitted to the fold's budget
  (issue #15); it trains with the plan's own epochs (no calibration) under the same ``max_time``.

Reported per recipe: per-image mean Dice inside the FOV, its paired difference to ``shipped`` and to
the MONAI peer (bootstrap 95 % CI over the 20 images), per-image clDice and Betti-0 / Betti-1 errors
(:mod:`medseg.metrics.topology`), and the pooled F1 / sensitivity / specificity / accuracy / AUC over
all FOV pixels of the 20 test images (:mod:`medseg.metrics.pooled`, the DRIVE papers' convention).

    python experiments/benchmarks/bench_vessel_recipe.py --budget-min 25        # the protocol (~2.5 h)
    python experiments/benchmarks/bench_vessel_recipe.py --quick                # ~11 min shared: it runs
    python experiments/benchmarks/bench_vessel_recipe.py --variants shipped no_ema --budget-min 10
    python experiments/benchmarks/bench_vessel_recipe.py --variants tta --no-peer --runs KEPT/tmpXXXX  # re-score

``--quick`` trains fold 0 only, 20 s per recipe on 64-sample epochs: it checks the script end to
end, its numbers mean nothing. The figures belong in ``results.md`` only from a full run on a quiet
machine. Skips cleanly when ../shared is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality as bq
from common import REPO, SHARED_DRIVE, header

sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Variant:
    label: str
    overrides: tuple[str, ...] = ()
    threshold: str | None = None  # "auto": choose on the validation images
    reuse: str | None = None  # score another variant's runs instead of training
    ckpt: str = "best"  # the checkpoint scored: the one the run keeps, or last
    train_on_all: bool = False  # all 15 training images, no validation (bench_quality.medseg_fold)
    tta: bool = False  # score with test-time augmentation (flips and 90-degree rotations, 8 views in 2D)
    planned: bool = False  # the experiment medseg-plan writes for the fold and its budget (bench_quality.plan_fold)
    postprocess: bool = False  # medseg-select's connected-component rule, chosen on the validation images


P96_D3 = ("data.patch_size=[96,96]", "data.batch_size=12", "model.depth=3")
VARIANTS: dict[str, Variant] = {
    "shipped": Variant("shipped (experiment=drive_unet)"),
    "no_ema": Variant("- weight EMA (callbacks=default)", ("callbacks=default",)),
    "cldice": Variant("+ clDice (loss=bce_dice_cldice)", ("loss=bce_dice_cldice",)),
    "threshold": Variant("+ threshold chosen on validation (shipped runs)", threshold="auto", reuse="shipped"),
    # since the recipe keeps its final weights this scores the same weights as shipped; it measured the
    # change when shipped still kept the best epoch on the 2 validation images (results.md section 9b)
    "last": Variant("last.ckpt of the shipped runs", reuse="shipped", ckpt="last"),
    # last.ckpt: the final weights the recipe keeps, also in runs kept from before it kept them (--runs)
    "tta": Variant("+ flip and rotation TTA at test time (8 views; shipped runs, final weights)", reuse="shipped",
                   ckpt="last", tta=True),
    "all_images": Variant("+ all 15 images train, no validation (data.val_fraction=0)", train_on_all=True),
    "wide_shallow": Variant("wider/shallower U-Net (base 32, depth 3)", ("model.base_channels=32", "model.depth=3")),
    "patches_fg": Variant("96x96 patches, batch 8, 70 % vessel-centred",
                          ("data.patch_size=[96,96]", "data.batch_size=8", "data.foreground_fraction=0.7")),
    "residual": Variant("residual U-Net (model=residual_unet)", ("model=residual_unet",)),
    "light_augment": Variant("+ rotation, scaling, shifts, brightness/contrast (augment=light)", ("augment=light",)),
    "planned": Variant("medseg-plan's experiment for the fold and its budget (issue #15)", planned=True),
    "lr_high": Variant("Adam lr 5e-3 (shipped: 2e-3)", ("optimizer.lr=5.0e-3",)),
    "sgd_poly": Variant("nnU-Net's optimiser: SGD lr 0.01, Nesterov momentum 0.99, poly schedule",
                        ("optimizer=sgd", "scheduler=poly")),
    "narrow": Variant("narrower U-Net (base 12, depth 4)", ("model.base_channels=12",)),
    "p96_d3": Variant("96x96 patches, batch 12, depth 3 (the planner's choice of 9d, fixed)", P96_D3),
    "postprocess": Variant("+ medseg-select's component rule chosen on validation (shipped runs)",
                           reuse="shipped", postprocess=True),
    "p96_d3_postprocess": Variant("p96_d3 + medseg-select's component rule chosen on validation",
                                  reuse="p96_d3", postprocess=True),
    "p96_d3_tta": Variant("p96_d3 + flip and rotation TTA at test time (8 views)", reuse="p96_d3", tta=True),
    # the same two recipes from another training seed (the runs above all train from seed 42)
    "shipped_s7": Variant("shipped, training seed 7", ("seed=7",)),
    "shipped_s7_tta": Variant("shipped, seed 7, + 8-view TTA", reuse="shipped_s7", tta=True),
    "p96_d3_s7": Variant("p96_d3, training seed 7", (*P96_D3, "seed=7")),
    "p96_d3_s7_tta": Variant("p96_d3, seed 7, + 8-view TTA", reuse="p96_d3_s7", tta=True),
    "p96_d3_ema995": Variant("p96_d3 with a longer weight average (EMA decay 0.995, ~200 steps)",
                             (*P96_D3, "callbacks.ema.decay=0.995")),
    "p96_d3_ema995_tta": Variant("p96_d3_ema995 + 8-view TTA", reuse="p96_d3_ema995", tta=True),
    "p96_d3_tta_threshold": Variant("p96_d3 + 8-view TTA, threshold chosen on the TTA'd validation images",
                                    reuse="p96_d3", tta=True, threshold="auto"),
    # separating the two changes of p96_d3, and taking each one step further
    "p96_d4": Variant("96x96 patches, batch 12, depth 4 (p96_d3 without its shallower net)",
                      ("data.patch_size=[96,96]", "data.batch_size=12")),
    "p128_d3": Variant("128x128 patches, batch 8, depth 3", ("data.patch_size=[128,128]", "data.batch_size=8",
                                                            "model.depth=3")),
    "p96_d3_dice": Variant("p96_d3 trained on soft Dice alone (loss=dice, no BCE)", (*P96_D3, "loss=dice")),
    "p96_d3_dice_tta": Variant("p96_d3_dice + 8-view TTA", reuse="p96_d3_dice", tta=True),
    "p128_d3_tta": Variant("p128_d3 + 8-view TTA", reuse="p128_d3", tta=True),
}
MIN_SIZES = (5.0, 10.0, 20.0, 40.0, 80.0)  # px, tried beside medseg-select's (percentiles of the val masks)
QUICK = ("data.samples_per_epoch=64",)


@dataclass
class Scores:
    """Per-image values of one recipe, and its pooled accumulator."""

    per_image: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> case -> value
    pooled: object | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, case_id: str, value: float) -> None:
        self.per_image.setdefault(metric, {})[case_id] = float(value)


@contextlib.contextmanager
def saving_configs():
    """While active, every ``medseg.pipelines.train.train(cfg, run_dir)`` call (bench_quality's
    ``medseg_fold`` composes its configs in process, without Hydra's ``.hydra/config.yaml``) also saves
    its config there, so the run can be re-scored like any run folder (``load_run_config``)."""
    from omegaconf import OmegaConf, open_dict

    import medseg.pipelines.train as tp

    real = tp.train

    def train(cfg, run_dir):
        (Path(run_dir) / ".hydra").mkdir(parents=True, exist_ok=True)
        saved = cfg.copy()
        with open_dict(saved):
            saved.pop("hydra", None)  # as Hydra writes it: the job's config only
        OmegaConf.save(saved, Path(run_dir) / ".hydra" / "config.yaml", resolve=False)
        return real(cfg, run_dir)

    tp.train = train
    try:
        yield
    finally:
        tp.train = real


def rule_on_val(task, probs_fn, val_cases, threshold: float) -> tuple[dict, dict[str, float]]:
    """The connected-component rule medseg-select would choose (``choose_postprocessing``: keep the
    largest component, or remove those under a cut-off, kept only if it raises mean Dice) with the 2
    validation images as its pool, :data:`MIN_SIZES` tried beside its learned cut-offs; and the mean
    Dice gain of each rule tried."""
    from medseg.evaluation import case_target, foreground_probs
    from medseg.select import choose_postprocessing

    probs = [foreground_probs(task, probs_fn(c)).numpy() for c in val_cases]
    targets = [case_target(task, c).numpy() for c in val_cases]
    choices, _ = choose_postprocessing(task.kind, probs, targets, [c.roi for c in val_cases], [threshold],
                                       [1.0] * len(probs), min_sizes=MIN_SIZES)
    return choices[0].rule, choices[0].tried


def score_run(run: Path, out: Path, scores: Scores, threshold: str | None, ckpt: str = "best",
              tta: bool = False, postprocess: bool = False) -> float | None:
    """Score a finished run's checkpoint ``ckpt`` on its test split (with ``tta``: test-time
    augmentation; with ``postprocess``: medseg-select's connected-component rule chosen on the
    validation images): Dice, topology metrics, pooled counts. Returns the threshold used when it
    was chosen on validation."""
    from medseg.evaluation import choose_threshold, foreground_probs, model_probs
    from medseg.inference.postprocess import describe_rule
    from medseg.metrics.pooled import PooledMetrics
    from medseg.metrics.topology import betti_errors, cldice
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.eval import evaluate_split, load_model, load_run_config

    cfg = load_run_config(run)
    dm = build_datamodule(cfg)
    module, _ = load_model(cfg, dm, run, ckpt)
    task = module.task

    def on_case(case, probs, pred, target) -> None:
        roi = case.roi
        p, t = pred.numpy().astype(bool), target.numpy().astype(bool)
        scores.add("cldice", case.case_id, np.nanmean(cldice(p, t, roi=roi)))
        b = betti_errors(p, t, roi=roi)
        scores.add("betti0_error", case.case_id, np.nanmean(b["betti0_error"]))
        scores.add("betti1_error", case.case_id, np.nanmean(b["betti1_error"]))
        fg = foreground_probs(task, probs).float()
        if scores.pooled is None:
            scores.pooled = PooledMetrics(fg.shape[0])
        scores.pooled.update(fg, t, roi, pred=p)  # the decision scored (the fold's threshold, post-processing)

    used = task.threshold
    if threshold == "auto":
        used, _ = choose_threshold(task, model_probs(module, tta), dm.cases["val"])  # on what is scored
    rules = None
    if postprocess:
        rule, tried = rule_on_val(task, model_probs(module, tta), dm.cases["val"], used)
        scores.notes.append(f"{describe_rule(rule)} chosen on the 2 validation images (Dice gain there: "
                            + ", ".join(f"{k} {v:+.4f}" for k, v in tried.items()) + ")")
        rules = [rule]
    per_image = evaluate_split(module, dm, out, split="test", overlays=False, threshold=used, metrics=[],
                               tta=tta, on_case=on_case, postprocessing=rules).per_image
    for case_id, value in per_image["dice"].items():
        scores.add("dice", case_id, value)
    return used if threshold == "auto" else None


def paired(a: dict[str, float], b: dict[str, float], name_a: str, name_b: str):
    import pandas as pd

    from medseg.report.stats import paired_comparison

    return paired_comparison(pd.Series(a), pd.Series(b), name_a, name_b)


def _versus(s: Scores, ref: Scores | None, name: str, ref_name: str, cases: list[str]) -> str:
    """Paired Dice difference ``s - ref`` with its bootstrap CI, or ``--``."""
    if ref is None or ref is s or not cases:
        return "--"
    c = paired(ref.per_image["dice"], s.per_image["dice"], ref_name, name)
    return f"{c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}]"


def _mean_of(s: Scores, metric: str, cases: list[str]) -> str:
    v = s.per_image.get(metric)
    return f"{np.mean([v[c] for c in cases]):.4f}" if v else "--"


def _largest_bound(scores: dict[str, Scores]) -> float:
    bounds = [float(np.nanmax(s.pooled.compute()["auc_error_bound"])) for s in scores.values() if s.pooled]
    return max(bounds) if bounds else float("nan")


def table(scores: dict[str, Scores], ids: list[str], budget_min: float, per_fold_s: float, quick: bool) -> str:
    lines = [header("Vessel recipe ablation (real DRIVE, 4-fold CV)" + (" -- QUICK CHECK, not a result" if quick
                                                                         else "")),
             f"Budget {budget_min:.2f} min of training per recipe ({per_fold_s / 60:.2f} min per fold), 2 CPU "
             "cores; `threshold` re-scores the `shipped` runs and costs no training. Dice, clDice and "
             "Betti errors: per image inside the FOV, mean over the test images. Pooled: all FOV pixels of "
             "the test images counted together (the DRIVE papers' convention), AUC from a 10,000-bin histogram "
             f"(largest binning error bound of the table: {_largest_bound(scores):.1e}).", "",
             "| recipe | Dice (per image) | vs shipped [95 % CI] | vs MONAI peer [95 % CI] | clDice | "
             "Betti-0 err | Betti-1 err | pooled F1 | pooled Se | pooled Sp | pooled Acc | pooled AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    peer = scores.get("peer")
    ship = scores.get("shipped")
    for name, s in scores.items():
        dice = s.per_image.get("dice", {})
        cases = [c for c in ids if c in dice]
        mean = np.mean([dice[c] for c in cases]) if cases else float("nan")

        if s.pooled is not None:
            pm = s.pooled.compute()
            pooled = " | ".join(f"{float(np.nanmean(pm[k])):.4f}"
                                for k in ("f1", "sensitivity", "specificity", "accuracy", "auc"))
        else:
            pooled = " | ".join(["--"] * 5)
        label = "MONAI peer (UNet 16-256, DiceCE)" if name == "peer" else VARIANTS[name].label
        topo = " | ".join(_mean_of(s, m, cases) for m in ("cldice", "betti0_error", "betti1_error"))
        lines.append(f"| {label} | {mean:.4f} | {_versus(s, ship, name, 'shipped', cases)} | "
                     f"{_versus(s, peer, name, 'peer', cases)} | {topo} | {pooled} |")
    notes = [n for s in scores.values() for n in s.notes]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    lines.append("")
    return "\n".join(lines)


def run(budget_min: float, variants: list[str], folds_to_run: list[int] | None, quick: bool,
        peer: bool = True, out: Path | None = None, keep: str | None = None, runs: Path | None = None) -> str:
    """``runs``: a ``--keep`` folder of an earlier run (the one holding ``fold0/``, ...); a trained variant
    whose run is there is scored again instead of trained (re-scoring variants, such as ``tta``, need
    no new training then)."""
    if not (SHARED_DRIVE / "training").is_dir():
        msg = f"skipped: {SHARED_DRIVE} not present"
        print(msg)
        return msg
    from medseg.data.formats.drive import DriveReader

    ids = DriveReader(SHARED_DRIVE).list_cases("training")
    folds = bq.folds_of(ids)
    folds_to_run = list(range(len(folds))) if folds_to_run is None else folds_to_run
    per_fold_s = budget_min * 60 / len(folds)
    extra = QUICK if quick else ()
    if quick:
        per_fold_s = 20.0
    trained = [v for v in variants if VARIANTS[v].reuse is None]
    for v in variants:  # a re-scoring variant needs the runs it re-scores
        if VARIANTS[v].reuse and VARIANTS[v].reuse not in trained:
            trained.insert(0, VARIANTS[v].reuse)
    scores: dict[str, Scores] = {v: Scores() for v in dict.fromkeys(trained + variants)}
    if peer:
        scores["peer"] = Scores()
    if keep is not None:
        Path(keep).mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory() if keep is None else None
    root = Path(scratch.name if scratch else tempfile.mkdtemp(dir=keep))
    t0 = time.perf_counter()
    try:
        for k in folds_to_run:
            test_ids = folds[k]
            train_ids = [c for c in ids if c not in test_ids]
            for v in trained:
                work = root / f"fold{k}" / v
                work.mkdir(parents=True)
                done = runs / f"fold{k}" / v / "run" if runs is not None else None
                if done is not None and (done / ".hydra" / "config.yaml").is_file():
                    from tests.conftest import compose_cfg

                    compose_cfg("train", ["experiment=drive_unet"], work)  # a Hydra context for ${hydra:...}
                    run_dir, note = done, f"scored again from {done}"
                else:
                    run_dir = work / "run"
                    with saving_configs():
                        _, note = bq.medseg_fold(train_ids, test_ids, per_fold_s, work,
                                                 [*VARIANTS[v].overrides, *extra, "tta=false"],
                                                 train_on_all=VARIANTS[v].train_on_all,
                                                 planned=VARIANTS[v].planned)
                scores[v].notes.append(f"fold {k} {v}: {note}")
                score_run(run_dir, work / "scored", scores[v], None)
                for r in variants:
                    if VARIANTS[r].reuse == v:
                        thr = score_run(run_dir, work / f"scored_{r}", scores[r], VARIANTS[r].threshold,
                                        VARIANTS[r].ckpt, VARIANTS[r].tta, VARIANTS[r].postprocess)
                        if thr is not None:
                            scores[r].notes.append(f"fold {k} {r}: threshold {thr:.2f} chosen on the 2 validation "
                                                   "images")
            if peer:
                scores["peer"].per_image.setdefault("dice", {}).update(bq.monai_fold(train_ids, test_ids, per_fold_s))
            line = f"fold {k}: " + "  ".join(
                f"{n} {np.mean([s.per_image['dice'][c] for c in test_ids]):.4f}" for n, s in scores.items())
            print(line, f"({time.perf_counter() - t0:.0f} s so far)", flush=True)
    finally:
        if scratch is not None:
            scratch.cleanup()
    scores = {v: scores[v] for v in [*variants, *(["peer"] if peer else [])] if v in scores}
    text = table(scores, [c for k in folds_to_run for c in folds[k]], per_fold_s * len(folds) / 60, per_fold_s,
                 quick)
    print(text)
    if out is not None:
        out.write_text(text)
        raw = {n: {"per_image": s.per_image,
                   "pooled": ({k: v.tolist() for k, v in s.pooled.compute().items()} if s.pooled else None)}
               for n, s in scores.items()}
        out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    return text


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-min", type=float, default=25.0, help="wall-clock minutes per recipe (all folds)")
    ap.add_argument("--quick", action="store_true", help="fold 0, 20 s per recipe, short epochs: checks it runs")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--folds", type=int, nargs="*", help="run only these folds (0-3)")
    ap.add_argument("--no-peer", action="store_true", help="leave the MONAI peer out")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) and the raw values (.json) here")
    ap.add_argument("--keep", help="keep the run folders under this directory")
    ap.add_argument("--runs", type=Path, help="score the runs an earlier --keep kept (the folder holding fold0/, "
                                              "...) instead of training them again")
    a = ap.parse_args()
    folds = a.folds if a.folds is not None else ([0] if a.quick else None)
    run(a.budget_min, a.variants, folds, a.quick, not a.no_peer, a.out, a.keep, a.runs)
