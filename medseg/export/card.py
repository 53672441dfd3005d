"""The model card of an export package: ``model_card.json`` (machine-readable) and ``model_card.md``.

Scores come from the run's own tables, never re-estimated: a k-fold folder's out-of-fold rows
(``oof_per_image.csv``, the cross-validation estimate) and its fold ensemble on the test split
(``ensemble/models/<name>/per_image.csv``); a single run's test rows (``per_image.csv``). Each mean
carries a 95 % percentile-bootstrap CI over cases (:func:`medseg.report.stats.bootstrap_ci`).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from medseg.report.stats import bootstrap_ci

CARD_METRICS = ("dice", "iou", "precision", "recall")


def score_table(path: Path, label: str) -> dict[str, Any] | None:
    """Mean and 95 % bootstrap CI per metric of a per-image table, or ``None`` when absent."""
    if not path.is_file():
        return None
    df = pd.read_csv(path, index_col=0)
    out: dict[str, Any] = {"source": label, "n_cases": int(len(df)), "metrics": {}}
    for m in CARD_METRICS:
        if m in df.columns:
            ci = bootstrap_ci(df[m].to_numpy(), n_boot=2000)
            out["metrics"][m] = {"mean": round(ci.mean, 6), "ci95": [round(ci.low, 6), round(ci.high, 6)]}
    return out


def collect_scores(run_dir: Path, is_kfold: bool) -> list[dict[str, Any]]:
    if is_kfold:
        found = [score_table(run_dir / "oof_per_image.csv", "cross-validation, out-of-fold (oof_per_image.csv)"),
                 score_table(run_dir / "ensemble" / "models" / run_dir.name / "per_image.csv",
                             f"test split, fold ensemble (ensemble/models/{run_dir.name}/per_image.csv)")]
    else:
        found = [score_table(run_dir / "per_image.csv", "test split (per_image.csv)")]
    return [s for s in found if s is not None]


def versions() -> dict[str, str]:
    """Versions of what exported the package (``not installed`` for an absent optional one)."""
    from importlib import metadata

    out = {}
    for dist in ("medseg", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["python"] = platform.python_version()
    return out


def _md_scores(scores: list[dict[str, Any]]) -> list[str]:
    if not scores:
        return ["No per-image score table was found in the run folder: the model is **unvalidated**.", ""]
    lines = []
    for s in scores:
        lines += [f"**{s['source']}**, {s['n_cases']} cases (mean, 95 % bootstrap CI over cases):", "",
                  "| metric | mean | 95 % CI |", "|---|---|---|"]
        lines += [f"| {m} | {v['mean']:.4f} | [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] |"
                  for m, v in s["metrics"].items()]
        lines.append("")
    return lines


def _md_selection(select: dict[str, Any] | None) -> list[str]:
    """The pipeline medseg-select chose: members and weights, then its steps with out-of-fold Dice."""
    if not select:
        return []
    lines = ["## Selection (medseg-select)", "", f"From `{select['selection']}`; chosen on out-of-fold "
             f"predictions only ({(select.get('oof') or {}).get('cases')} cases), no test data.", "",
             "| member | kind | weight | networks |", "|---|---|---|---|"]
    lines += [f"| `{m['path']}` | {m['kind']} | {m['weight']:.3f} | {m['networks']} |" for m in select["members"]]
    lines += ["", f"- temperature: {select['temperature']}", f"- thresholds: {select['thresholds']}",
              f"- postprocessing: {select['postprocessing']}", "",
              "| step | choice | OOF Dice | 95 % CI | gain over the previous step |", "|---|---|---|---|---|"]
    for s in select["steps"]:
        gain = f"{s['gain']:+.4f} [{s['gain_ci_low']:+.4f}, {s['gain_ci_high']:+.4f}]" if "gain" in s else ""
        lines.append(f"| {s['step']} | {s['choice']} | {s['oof_dice']:.4f} | [{s['ci_low']:.4f}, {s['ci_high']:.4f}] "
                     f"| {gain} |")
    oof = select.get("oof") or {}
    if oof.get("dice") is not None:
        lines += ["", f"Final out-of-fold Dice {oof['dice']:.4f}."]
    if select.get("note"):
        lines += ["", str(select["note"])]
    return lines + [""]


def render_markdown(card: dict[str, Any]) -> str:
    t, i, d = card["task"], card["input"], card["training_data"]
    steps = "\n".join(f"{n}. `{s['name']}` {json.dumps(s['args'], sort_keys=True)}"
                      for n, s in enumerate(card["preprocessing"], 1)) or "none"
    inf = card["inference"]
    post = card["postprocessing"] or "none"
    lines = [
        f"# Model card: {card['name']}", "",
        f"Exported by medseg-export from `{card['source']['run_dir']}` "
        f"({card['source']['kind']}, {card['source']['members']} network(s)); package format "
        f"version {card['format_version']}.", "",
        *_md_selection(card.get("selection")),
        "## Task", "",
        f"- kind: **{t['kind']}** ({t['decision_rule']})",
        f"- classes: {', '.join(t['classes'])}", f"- thresholds: {t['thresholds']}", "",
        "## Input", "",
        f"- {i['spatial_dims']}D, {i['channels']} channel(s) as read ({i['modality']})"
        f"; the network takes {i['network_channels']} after preprocessing",
        f"- spacing: {i['spacing'] or 'not recorded (2D pixels)'}",
        f"- reading: {i['reading']}", "",
        "## Preprocessing (in order)", "", steps, "",
        "## Inference", "",
        f"- {inf['mode']}" + (f", windows {inf.get('roi_size')}, overlap {inf.get('overlap')}, "
                              f"{inf.get('blend')} weighting (sigma 0.125 x window)" if inf["mode"] == "sliding_window" else ""),
        "- test-time augmentation: " + (("flips" if card["tta"].get("flips") else "") +
                                         (" + 90-degree rotations" if card["tta"].get("rot90") else "")
                                         if card["tta"].get("enabled") else "none"),
        f"- ensemble: {card['ensemble']}", f"- temperature: {card['calibration']['temperature']}",
        f"- postprocessing: {post}", "",
        "## Training data and splits", "",
        f"- dataset reader: `{d['reader']}`; data root at training time: `{d['root']}`",
        "- splits (cases per split): " + ("; ".join(f"{k}: {v}" for k, v in d["splits"].items())
                                            or "not recorded (no splits.json)"), "",
        "## Scores", "", *(_md_scores(card["scores"]) if card["scores"] or not card.get("selection") else
                           ["No member has a per-image score table of its own; the out-of-fold Dice of the "
                            "selection (above) is the only estimate: no test split was scored.", ""]),
        "## Calibration", "", card["calibration"]["note"], "",
        "## Intended use and limits", "", card["intended_use"], "", *[f"- {x}" for x in card["limits"]], "",
        "## Versions", "", *[f"- {k}: {v}" for k, v in card["versions"].items()], "",
        "## Licence", "", card["licence"], "",
    ]
    return "\n".join(lines)
