"""``medseg-select``: choose the pipeline to ship from out-of-fold (OOF) predictions only.

Steps, each scored on the OOF cases with its gain over the previous step (paired bootstrap CI over
cases): the best single configuration; the best ensemble (greedy forward selection with replacement);
temperature scaling of the ensemble's logits (fitted on OOF pixels; ECE before/after); a decision
threshold per class (binary / multi-label); connected-component postprocessing per class (kept only
when it raises that class's OOF Dice). The data sets are never read: everything comes from the
``fold_<k>/oof/cases/*.npz`` records that ``medseg-kfold`` writes (labels included), so no test label
is touched and no model is re-run. Sweep trials (which have no OOF) are scored on their shared
validation split, predicted once and cached in ``trial_<n>/oof/cases/``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from medseg.errors import ConfigError, DataError
from medseg.inference.postprocess import describe_rule, postprocess
from medseg.report.html import render_html, render_markdown
from medseg.report.stats import bootstrap_ci, paired_comparison
from medseg.select import core
from medseg.select.oof import (
    OOFCase,
    Source,
    check_compatible,
    logits_to_probs,
    oof_writer,
    probs_to_logits,
    sources_from,
)
from medseg.select.report import plot_reliability, plot_uncertainty
from medseg.tasks import discretize
from medseg.utils.io import save_with, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def predict_trial_validation(trial_dir: Path) -> None:
    """Predict a sweep trial's validation split with its best checkpoint, once, into ``oof/cases/``."""
    from medseg.pipelines.build import build_datamodule
    from medseg.pipelines.eval import evaluate_split, load_model, load_run_config, run_source

    run_cfg = load_run_config(trial_dir)
    OmegaConf.set_struct(run_cfg, False)
    run_cfg.pop("hydra", None)
    dm = build_datamodule(run_cfg)
    module, ckpt = load_model(run_cfg, dm, trial_dir, "best")
    log.info("%s: predicting its validation split with %s (cached for later selections)", trial_dir, ckpt.name)
    evaluate_split(module, dm, trial_dir / "oof", split="val", overlays=False, metrics=(),
                   title=f"{trial_dir.name}: validation predictions for medseg-select",
                   on_case=oof_writer(trial_dir / "oof" / "cases", module.task, 512),
                   source=run_source(trial_dir, ckpt))


def _load_all(sources: Sequence[Source]) -> tuple[list[str], list[list[np.ndarray]], list[OOFCase]]:
    ids = sorted(set.intersection(*(set(s.case_files) for s in sources)))
    if not ids:
        raise DataError("the sources share no out-of-fold cases: " + ", ".join(str(s.path) for s in sources))
    ref = [sources[0].load(c) for c in ids]
    probs = []
    for s in sources:
        rows = []
        for c, r in zip(ids, ref):
            rec = r if s is sources[0] else s.load(c)
            if rec.logits.shape[1:] != r.target.shape[1:]:
                raise DataError(f"{s.case_files[c]}: OOF map {rec.logits.shape} does not match {sources[0].case_files[c]} "
                                f"{r.logits.shape} (different oof_probs_max_size?)")
            rows.append(logits_to_probs(s.task.kind, rec.logits))
        probs.append(rows)
    return ids, probs, ref


def _step(name: str, detail: str, scores: pd.Series, prev: pd.Series | None, prev_name: str | None,
          n_boot: int) -> dict:
    ci = bootstrap_ci(scores.to_numpy(), n_boot=n_boot)
    row = {"step": name, "choice": detail, "oof_dice": ci.mean, "ci_low": ci.low, "ci_high": ci.high}
    if prev is not None:
        cmp = paired_comparison(prev, scores, prev_name or "previous", name, n_boot=n_boot)
        row |= {"gain": cmp.diff.mean, "gain_ci_low": cmp.diff.low, "gain_ci_high": cmp.diff.high}
    return row


def select(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Run the selection over ``cfg.runs``; write ``selection.json``, ``selected.yaml`` and the report."""
    out_dir = Path(out_dir)
    runs = list(cfg.runs or [])
    if not runs:
        raise ConfigError("runs: give at least one k-fold or sweep folder (medseg-select DIR [DIR ...])")
    sources = sources_from(runs, predict_trial=predict_trial_validation)
    check_compatible(sources)
    if any(s.kind == "kfold" for s in sources) and any(s.kind == "trial" for s in sources):
        raise DataError("cannot mix k-fold folders (scored out-of-fold) and sweep trials (scored on one validation "
                        "split) in one selection: " + ", ".join(str(s.path) for s in sources))
    task = sources[0].task
    kind = task.kind
    ids, probs, ref = _load_all(sources)
    targets, rois = [r.target for r in ref], [r.roi for r in ref]
    scales = [r.area_scale for r in ref]
    n_boot = int(cfg.n_boot)
    case_mean = lambda d: pd.Series(np.nanmean(d, 1), index=ids)  # noqa: E731

    # 1. every candidate alone, at the task's default decision
    default_thr = None if kind == "multiclass" else [task.threshold] * task.n_scored
    singles = {s.name: case_mean(core.case_dice(kind, probs[m], targets, rois, default_thr))
               for m, s in enumerate(sources)}
    board = pd.DataFrame([{"candidate": n, "path": str(s.path), "kind": s.kind, "oof_dice": v.mean(),
                           **dict(zip(("ci_low", "ci_high"), (lambda c: (c.low, c.high))(bootstrap_ci(v, n_boot))))}
                          for (n, v), s in zip(singles.items(), sources)]).set_index("candidate")
    board = board.sort_values("oof_dice", ascending=False)
    best_name = board.index[0]
    best_m = [s.name for s in sources].index(best_name)
    steps = [_step("single", best_name, singles[best_name], None, None, n_boot)]
    prev, prev_name = singles[best_name], "best single"

    # 2. greedy ensemble
    if len(sources) > 1 and cfg.ensemble:
        greedy = core.greedy_ensemble(kind, probs, targets, rois, rounds=int(cfg.ensemble_rounds))
        weights = greedy.weights
    else:
        weights = np.eye(len(sources))[best_m]
    members = [m for m in range(len(sources)) if weights[m] > 0]
    ens = [core.weighted_mean([probs[m][i] for m in members], weights[members]) for i in range(len(ids))]
    ens_scores = case_mean(core.case_dice(kind, ens, targets, rois, default_thr))
    if len(members) > 1:
        detail = ", ".join(f"{sources[m].name} x{weights[m]:.2f}" for m in members)
        steps.append(_step("ensemble", detail, ens_scores, prev, prev_name, n_boot))
        prev, prev_name = ens_scores, "ensemble"
    elif len(sources) > 1:
        steps.append(_step("ensemble", f"no addition to {best_name} raised OOF Dice", ens_scores, prev, prev_name,
                           n_boot))

    # 3. temperature scaling of the ensemble's logits
    ens_logits = [probs_to_logits(task, torch.from_numpy(p)).numpy() for p in ens]
    temperature = core.fit_temperature(kind, ens_logits, targets, rois) if cfg.temperature else 1.0
    rel_before = core.reliability(kind, ens, targets, rois)
    calibrated = [logits_to_probs(kind, z, temperature) for z in ens_logits]
    rel_after = core.reliability(kind, calibrated, targets, rois)
    t_scores = case_mean(core.case_dice(kind, calibrated, targets, rois, default_thr))
    steps.append(_step("temperature", f"T = {temperature:.3f}; ECE {rel_before.ece:.4f} -> {rel_after.ece:.4f}",
                       t_scores, prev, prev_name, n_boot))
    prev, prev_name = t_scores, "temperature"

    # 4. thresholds per class
    thresholds = None
    if kind != "multiclass" and cfg.thresholds:
        thr, _ = core.fit_thresholds(calibrated, targets, rois)
        thr_scores = case_mean(core.case_dice(kind, calibrated, targets, rois, thr))
        if float(thr_scores.mean()) > float(prev.mean()) + 1e-12:
            thresholds = [float(t) for t in thr]
            steps.append(_step("thresholds", ", ".join(f"{c} {t:.2f}" for c, t in zip(task.class_names, thresholds)),
                               thr_scores, prev, prev_name, n_boot))
            prev, prev_name = thr_scores, "thresholds"
        else:
            steps.append(_step("thresholds", f"kept {task.threshold:.2f} (no other threshold raised OOF Dice)",
                               prev, prev, prev_name, n_boot))
    decision = thresholds if thresholds is not None else default_thr

    # 5. postprocessing per class
    rules: list[dict] = [{"rule": "none"}] * task.n_scored
    pp_table = None
    if cfg.postprocessing:
        choices, final = core.choose_postprocessing(kind, calibrated, targets, rois, decision, scales)
        rules = [c.rule for c in choices]
        pp_scores = case_mean(final)
        pp_table = pd.DataFrame([{"class": c, "rule": k, "mean_dice_gain": v,
                                  "chosen": "yes" if k == describe_rule(ch.rule) else ""}
                                 for c, ch in zip(task.class_names, choices) for k, v in ch.tried.items()]
                                ).set_index("class")
        accepted = [f"{c}: {describe_rule(r)}" for c, r in zip(task.class_names, rules) if r["rule"] != "none"]
        steps.append(_step("postprocessing", "; ".join(accepted) or "none (no rule raised a class's OOF Dice)",
                           pp_scores, prev, prev_name, n_boot))
        prev = pp_scores
    final_scores = prev

    # the chosen pipeline and where it lives
    spec = {
        "task": {"kind": kind, "class_names": list(task.class_names)},
        "members": [{"path": str(sources[m].path.resolve()), "kind": sources[m].kind, "weight": float(weights[m])}
                    for m in members],
        "temperature": float(temperature),
        "thresholds": thresholds if thresholds is not None else (None if kind == "multiclass"
                                                                 else [task.threshold] * task.n_scored),
        "postprocessing": rules,
        "oof": {"cases": len(ids), "dice": float(final_scores.mean()), "ece_before": rel_before.ece,
                "ece_after": rel_after.ece},
        "steps": steps,
        "leaderboard": board.reset_index().to_dict(orient="records"),
        "note": ("chosen on out-of-fold predictions only (no test data); Dice on the stored OOF maps "
                 f"(largest stored side {max(max(r.target.shape[1:]) for r in ref)} px; larger images downsampled)"),
    }
    write_json_atomic(out_dir / "selection.json", spec)
    write_text_atomic(out_dir / "selected.yaml", selected_yaml(out_dir, spec))
    _report(out_dir, cfg, task, sources, board, steps, spec, ids, ens, calibrated, decision, rules, scales,
            targets, probs, members, final_scores, rel_before, rel_after, temperature, pp_table)
    return spec


def selected_yaml(out_dir: Path, spec: dict) -> str:
    """A ``medseg-predict`` config that applies the selection end to end."""
    sel = (out_dir / "selection.json").resolve()
    return "\n".join([
        "# medseg-predict config applying the pipeline chosen by medseg-select (members, weights, temperature,",
        "# per-class thresholds and postprocessing: selection.json next to this file).",
        f"#   medseg-predict --config-dir {out_dir.resolve()} --config-name selected split=test",
        f"#   medseg-predict --config-dir {out_dir.resolve()} --config-name selected input_dir=new_images/",
        "defaults:", "  - predict", "  - _self_", "",
        f"selection: {sel}",
        "# the first member (its data config gives the split's cases); outputs go to <selection folder>/predict/",
        f"run_dir: {spec['members'][0]['path']}",
        "hydra:", "  run:", f"    dir: {out_dir.resolve()}/predict/${{now:%Y-%m-%d_%H-%M-%S}}", ""])


def _report(out_dir, cfg, task, sources, board, steps, spec, ids, ens, calibrated, decision, rules, scales,
            targets, probs, members, final_scores, rel_before, rel_after, temperature, pp_table) -> None:
    kind = task.kind
    figs = out_dir / "figures"
    steps_df = pd.DataFrame(steps).set_index("step")
    blocks: list = [("h1", "Model selection on out-of-fold predictions"),
                    ("p", f"Sources: {', '.join(f'`{s.path}`' for s in sources)}. {len(ids)} cases, each predicted by "
                          "a model that did not train on it" + (" (sweep trials: the shared validation split)"
                                                                if sources[0].kind == "trial" else "")
                          + ". No test data was read. Dice: mean over cases with a bootstrap 95% CI; "
                          "gains: paired bootstrap over cases against the previous step."),
                    ("h2", "Leaderboard (each candidate alone)"), ("table", board.drop(columns=["path"]), "candidate"),
                    ("h2", "Chosen pipeline, step by step"), ("table", steps_df, "step"),
                    ("p", f"Final OOF Dice **{final_scores.mean():.4f}**. Apply it: "
                          f"`medseg-predict --config-dir {out_dir.resolve()} --config-name selected split=test` "
                          f"(or `selection={(out_dir / 'selection.json').resolve()}`).")]
    if pp_table is not None:
        blocks += [("h3", "Postprocessing candidates (mean Dice gain per class over none)"),
                   ("table", pp_table, "class")]
    blocks += [("h2", "Calibration"),
               ("p", f"Temperature **T = {temperature:.3f}** fitted on OOF pixels (negative log-likelihood); "
                     f"expected calibration error (15 bins) {rel_before.ece:.4f} before, {rel_after.ece:.4f} after."),
               ("img", plot_reliability(rel_before, rel_after, temperature, figs / "reliability.png"),
                "Reliability diagram (out-of-fold pixels inside the scoring region)")]
    # per-case uncertainty: best / median / worst by final OOF Dice
    ranked = final_scores.sort_values(ascending=False)
    picks = {"best": ranked.index[0], "median": ranked.index[len(ranked) // 2], "worst": ranked.index[-1]}
    others = members if len(members) > 1 else list(range(len(sources)))
    blocks.append(("h2", "Per-case uncertainty (best, median, worst OOF case)"))
    blocks.append(("p", "Entropy of the calibrated prediction; disagreement = standard deviation of the "
                        + ("ensemble members'" if len(members) > 1 else "candidates'") + " probabilities"
                        + ("" if len(others) > 1 else " (one candidate only: not drawn)")
                        + ". Each OOF case is predicted by one fold per configuration, so fold disagreement "
                          "appears at prediction time (medseg-predict with a k-fold member), not here."))
    for label, cid in picks.items():
        i = ids.index(cid)
        pred = discretize(kind, calibrated[i], decision)
        pred = postprocess(pred, rules, scales[i])
        fg = slice(1, None) if kind == "multiclass" else slice(None)
        dis = np.stack([probs[m][i][fg] for m in others]).std(0).max(0) if len(others) > 1 else None
        path = plot_uncertainty(targets[i].any(0), pred.any(0), core.entropy_map(kind, calibrated[i]), dis,
                                f"{label}: {cid}  OOF Dice {final_scores[cid]:.4f}", figs / f"{label}_{cid}.png")
        blocks.append(("img", path, f"{label}: {cid}"))
    write_text_atomic(out_dir / "report.md", render_markdown(blocks, out_dir))
    write_text_atomic(out_dir / "report.html", render_html("medseg-select", blocks))
    save_with(out_dir / "leaderboard.csv", lambda p: board.to_csv(p, float_format="%.6f"))
    save_with(out_dir / "steps.csv", lambda p: steps_df.to_csv(p, float_format="%.6f"))
