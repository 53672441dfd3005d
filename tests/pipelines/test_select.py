"""``medseg.pipelines.select.select`` on constructed OOF records (no training): a sweep folder of two
multi-label trials, where the ensemble, a per-class threshold and a per-class postprocessing rule each
help on exactly the class built for it, and the chosen pipeline replays through medseg-predict's
:class:`~medseg.inference.selected.Selection`."""

from __future__ import annotations

import json

import numpy as np
import torch
from omegaconf import OmegaConf

from medseg.inference.selected import Selection
from medseg.select.oof import save_oof_case
from medseg.tasks import Task

TASK = Task("multilabel", ["box", "ring"])


def _case(rng, i):
    t = np.zeros((2, 40, 40), bool)
    t[0, 5:20, 5 + i % 3:20 + i % 3] = True
    t[1, 22:36, 22:36] = True
    return t


def _trial(root, n, make_probs, cases):
    d = root / f"trial_{n}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml({"data": {"root": "/data/x"}, "threshold": 0.5}))
    (d / "results.json").write_text(json.dumps({"val/best_dice": 0.5}))
    for cid, t in cases.items():
        save_oof_case(d / "oof" / "cases" / f"{cid}.npz", TASK, torch.from_numpy(make_probs(t)), torch.from_numpy(t), None)


def test_select_over_a_sweep_picks_ensemble_thresholds_and_postprocessing(tmp_path):
    rng = np.random.default_rng(0)
    cases = {f"c{i}": _case(rng, i) for i in range(6)}

    def specks(p):  # isolated single-pixel false positives of the box class, more confident than the box
        p[0, 30:38:3, 2:10:3] = 0.95
        return p

    def a(t):  # trial 0: box right but with specks; ring under-confident (0.35 on the ring)
        return specks(np.where(t, np.array([0.9, 0.35])[:, None, None], 0.05).astype(np.float32))

    def b(t):  # trial 1: the same, and the box missed on its left third
        p = np.where(t, np.array([0.9, 0.35])[:, None, None], 0.05).astype(np.float32)
        p[0, :, :10] = np.where(t[0, :, :10], 0.2, 0.05)
        return specks(p)

    sweep = tmp_path / "sweep"
    _trial(sweep, 0, a, cases)
    _trial(sweep, 1, b, cases)
    from medseg.pipelines.select import select

    cfg = OmegaConf.create({"runs": [str(sweep)], "ensemble": True, "ensemble_rounds": 5, "temperature": True,
                            "thresholds": True, "postprocessing": True, "n_boot": 200})
    spec = select(cfg, tmp_path / "out")
    steps = {s["step"]: s for s in spec["steps"]}
    assert steps["single"]["choice"] == "sweep/trial_0"
    assert spec["thresholds"][1] < 0.5 - 0.05 and steps["thresholds"]["gain"] > 0.1  # ring was under-confident
    rules = spec["postprocessing"]
    assert rules[0]["rule"] in ("largest", "min_size") and rules[1]["rule"] == "none"  # specks only on the box
    assert steps["postprocessing"]["gain"] > 0 and steps["postprocessing"]["gain_ci_low"] > 0
    assert spec["oof"]["dice"] > steps["single"]["oof_dice"] + 0.1
    for name in ("selection.json", "selected.yaml", "report.md", "report.html", "figures/reliability.png"):
        assert (tmp_path / "out" / name).is_file(), name

    # the saved pipeline reproduces the OOF decision at full resolution
    sel = Selection.load(tmp_path / "out" / "selection.json")
    t = cases["c0"]
    pred = sel.decide(sel.combine([torch.from_numpy(a(t))]))
    assert pred.shape == (2, 40, 40) and torch.equal(pred, torch.from_numpy(t))
