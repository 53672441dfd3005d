"""``medseg-export selection=``: a medseg-select result (a 2-fold member and a single-run member, unequal
weights, a temperature, a non-0.5 threshold and a postprocessing rule) exported into one package.

The package's standalone runner gives the probabilities of medseg's :class:`Selection` (fold mean per
member, weighted member mean, temperature) within 1e-4, and ``runner.py`` (run as its own process) writes
the same masks as ``medseg-predict selection=``. One selection is written by hand (fixed values), one
by ``medseg-select`` itself on constructed out-of-fold records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from medseg.errors import ConfigError, DataError
from medseg.export import runner
from tests.conftest import compose_cfg
from tests.export.conftest import make_run
from tests.export.test_parity import BINARY, _png

ATOL = 1e-4
#: output-layer gain of the random networks: their mean still spreads over (0.35, 0.85)
GAIN = 80.0


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("members")
    kfold = root / "kf"
    for k in range(2):
        make_run(kfold / f"fold_{k}", BINARY, seed=10 + k, gain=GAIN)
    (kfold / "oof_per_image.csv").write_text("case_id,dice\na,0.5\nb,0.7\nc,0.6\n")  # the k-fold's OOF table
    return kfold, make_run(root / "single", BINARY, seed=20, gain=GAIN)


def write_selection(folder: Path, members: tuple[Path, Path], rule: dict, threshold: float = 0.55,
                    temperature: float = 0.5) -> Path:
    """A selection.json as medseg-select writes it (the fields Selection reads, the steps the card shows)."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = [{"step": "single", "choice": "kf", "oof_dice": 0.61, "ci_low": 0.55, "ci_high": 0.66},
             {"step": "ensemble", "choice": "kf x0.70, single x0.30", "oof_dice": 0.64, "ci_low": 0.58,
              "ci_high": 0.69, "gain": 0.03, "gain_ci_low": 0.01, "gain_ci_high": 0.05},
             {"step": "thresholds", "choice": f"vessel {threshold:.2f}", "oof_dice": 0.66, "ci_low": 0.6,
              "ci_high": 0.71, "gain": 0.02, "gain_ci_low": 0.005, "gain_ci_high": 0.04}]
    spec = {"task": {"kind": "binary", "class_names": ["vessel"]},
            "members": [{"path": str(members[0]), "kind": "kfold", "weight": 0.7},
                        {"path": str(members[1]), "kind": "trial", "weight": 0.3}],
            "temperature": temperature, "thresholds": [threshold], "postprocessing": [rule],
            "oof": {"cases": 12, "dice": 0.66, "ece_before": 0.08, "ece_after": 0.03}, "steps": steps,
            "leaderboard": [], "note": "constructed for the test"}
    (folder / "selection.json").write_text(json.dumps(spec))
    return folder / "selection.json"


def selection_probs(selection_json: Path, image: Path):
    """medseg's side, as medseg-predict selection= computes it: per member its folds' mean, then
    Selection.combine (weighted mean, temperature) and Selection.decide (threshold, postprocessing)."""
    from medseg.data.preprocess import Compose
    from medseg.evaluation import model_probs
    from medseg.inference.ensemble import combine
    from medseg.inference.selected import Selection
    from medseg.pipelines.ensemble import fold_dirs
    from medseg.pipelines.eval import load_model, load_run_config
    from medseg.pipelines.predict import _reader_info, read_input

    sel = Selection.load(selection_json)
    member_probs = []
    for m in sel.members:
        fold_probs = []
        for d in fold_dirs(m) or [m]:
            rc = load_run_config(d)
            info = _reader_info(rc)
            case = Compose(instantiate(rc.data.get("preprocess")) or [])(read_input(image, info.in_channels))
            info.in_channels = int(case.image.shape[0])
            module, _ = load_model(rc, info, d)
            fold_probs.append(model_probs(module, False)(case))
        member_probs.append(fold_probs[0] if len(fold_probs) == 1 else combine(fold_probs))
    probs = sel.combine(member_probs)
    return sel, probs, sel.decide(probs)


def test_export_a_selection_matches_predict_selection(members, tmp_path):
    from medseg.pipelines.export import export_run
    from medseg.pipelines.predict import predict

    sel_json = write_selection(tmp_path / "select", members, {"rule": "min_size", "min_size": 12.5})
    pkg = export_run(compose_cfg("export", [f"selection={sel_json.parent}"], tmp_path / "log"), tmp_path / "pkg")
    manifest = json.loads((pkg / "package.json").read_text())
    assert [m["name"] for m in manifest["members"]] == ["kf/fold_0", "kf/fold_1", "single"]
    assert manifest["ensemble"]["groups"] == [[0, 1], [2]] and manifest["ensemble"]["weights"] == [0.7, 0.3]
    assert manifest["decision"]["thresholds"] == [0.55] and manifest["decision"]["temperature"] == 0.5
    assert manifest["postprocessing"] == {"vessel": {"min_size": 12.5, "connectivity": "full"}}
    card = (pkg / "model_card.md").read_text()
    assert "## Selection (medseg-select)" in card and "kf x0.70, single x0.30" in card and "0.6600" in card
    scores = json.loads((pkg / "model_card.json").read_text())["scores"]
    assert [(sc["source"].split(":")[0], sc["n_cases"]) for sc in scores] == [("member kf", 3)]
    assert abs(scores[0]["metrics"]["dice"]["mean"] - 0.6) < 1e-6

    images = tmp_path / "images"
    images.mkdir()
    paths = [_png(images / f"img{i}.png", shape, seed=i, rgb=True) for i, shape in enumerate([(97, 83), (64, 71)])]
    model = runner.Model(pkg)
    for path in paths:
        sel, probs, masks = selection_probs(sel_json, path)
        case = runner.read_input(path, 3)
        result = model.predict(case["image"], case["roi"], case["meta"])
        err = float(np.abs(result["probs"] - probs.numpy()).max())
        assert err <= ATOL, f"{path.name}: max |runner - Selection| = {err:.3g}"
        assert (result["masks"] == masks.numpy()).all()
        # the comparison means something: threshold and the rule both matter on this image
        assert 0.02 < float(masks.float().mean()) < 0.98
        unprocessed = probs > 0.55
        assert not torch.equal(unprocessed, masks), "min_size removed nothing"
        assert not torch.equal(probs > 0.5, unprocessed), "the threshold changed nothing"

    # the entry points: medseg-predict selection= and the package's own runner.py in a fresh process
    out_a = tmp_path / "a"
    predict(compose_cfg("predict", [f"selection={sel_json}", f"input_dir={images}"], out_a), out_a)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(pkg / "runner.py"), str(images), "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for path in paths:
        a = np.asarray(Image.open(out_a / "masks" / f"{path.stem}.png"))
        b = np.asarray(Image.open(tmp_path / "b" / "masks" / f"{path.stem}.png"))
        assert a.shape == b.shape and (a == b).all(), f"{path.name}: {int((a != b).sum())} pixels differ"


def test_largest_component_rule_matches_selection(members, tmp_path):
    """The runner's full-connectivity "largest" rule on the package's own probabilities equals
    medseg's postprocessing (cc3d, 8-connected) on the same map."""
    from medseg.inference.selected import Selection

    sel_json = write_selection(tmp_path / "sel", members, {"rule": "largest"}, threshold=0.6, temperature=0.7)
    sel = Selection.load(sel_json)
    manifest = {"task": {"kind": "binary", "classes": ["vessel"]},
                "postprocessing": {"vessel": {"largest_component": True, "connectivity": "full"}}}
    rng = np.random.default_rng(3)
    probs = rng.uniform(0, 1, (1, 60, 50)).astype(np.float32)
    ours = sel.decide(sel.combine([torch.from_numpy(probs)])).numpy()
    calibrated = runner.recalibrate(probs, "binary", 0.7)
    theirs = runner.postprocess(calibrated > np.float32(0.6), manifest["postprocessing"], ["vessel"])
    assert ours.sum() > 1 and (ours == theirs).all()
    face = runner.postprocess(calibrated > np.float32(0.6), {"vessel": {"largest_component": True}}, ["vessel"])
    assert not (face == theirs).all()  # 4- and 8-connectivity differ on this map: the key is needed


def test_selection_with_a_missing_member_fails_naming_it(members, tmp_path):
    from medseg.pipelines.export import export_run

    gone = tmp_path / "moved_away"
    sel_json = write_selection(tmp_path / "sel", (members[0], gone), {"rule": "none"})
    with pytest.raises(DataError, match=f"member 1 {gone}: run folder not found"):
        export_run(compose_cfg("export", [f"selection={sel_json}"], tmp_path / "log"), tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()
    with pytest.raises(ConfigError, match="exactly one"):
        export_run(compose_cfg("export", [f"selection={sel_json}", f"run_dir={members[1]}"], tmp_path / "log"),
                   tmp_path / "pkg")
    with pytest.raises(ConfigError, match="threshold come from"):
        export_run(compose_cfg("export", [f"selection={sel_json}", "threshold=0.4"], tmp_path / "log"), tmp_path / "pkg")


@pytest.mark.slow  # moved out of `make test` (its 10-minute limit); `make test-slow` runs it
def test_cli_missing_member_is_one_clean_message(members, tmp_path):
    sel_json = write_selection(tmp_path / "sel", (tmp_path / "nowhere", members[1]), {"rule": "none"})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-m", "medseg.cli.export", f"selection={sel_json}",
                           f"hydra.run.dir={tmp_path / 'log'}"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert f"member 0 {tmp_path / 'nowhere'}: run folder not found" in proc.stderr


@pytest.mark.parametrize("kind,classes", [("multiclass", ["bg_is_first", "a", "b"]), ("multilabel", ["a", "b"])])
def test_runner_combination_equals_selection_combine(kind, classes, tmp_path):
    """Fold mean per member, weighted member mean and temperature, on random maps, for the other task
    kinds: the runner's arithmetic (``Model.probabilities`` with stand-in networks) equals Selection's."""
    from medseg.inference.ensemble import combine
    from medseg.inference.selected import Selection

    rng = np.random.default_rng(5)
    c = len(classes)
    logits = [rng.normal(0, 3, (1, c, 20, 24)).astype(np.float32) for _ in range(3)]  # networks: 2 + 1
    model = runner.Model.__new__(runner.Model)
    model.manifest = {"inference": {"mode": "whole", "size_divisor": 4}, "tta": {"enabled": False}}
    model.task, model.nets = kind, [lambda x, z=z: z for z in logits]
    model.groups, model.weights = [[0, 1], [2]], [0.25, 0.75]
    model.temperature, model.temperature_on = 1.6, "probabilities"
    ours = model.probabilities(np.zeros((1, 20, 24), np.float32))
    probs = [torch.from_numpy(runner.activation(z, kind)[0]) for z in logits]
    sel = Selection(kind, classes[1:] if kind == "multiclass" else classes, [tmp_path, tmp_path], [1.0, 3.0], 1.6,
                    None, [{"rule": "none"}] * (c - 1 if kind == "multiclass" else c))
    theirs = sel.combine([combine(probs[:2]), probs[2]]).numpy()
    assert np.abs(ours - theirs).max() <= 1e-5
    assert np.abs(ours - (probs[0].numpy() + probs[1].numpy()) / 8 - probs[2].numpy() * 0.75).max() > 1e-2  # T mattered


def _oof_target(i: int) -> np.ndarray:
    t = np.zeros((1, 40, 40), bool)
    t[0, 6:30, 6 + i % 3:30 + i % 3] = True
    return t


def _oof_probs(t: np.ndarray, half: int) -> np.ndarray:
    """0.95 on one half of the box, 0.45 on the other (the members' mean, 0.7, finds the whole box); a
    0.6 halo around the box in both (a threshold above 0.5 helps); isolated 0.95 specks (a component
    rule helps)."""
    from scipy import ndimage

    halo = ndimage.binary_dilation(t[0], iterations=2) & ~t[0]
    p = np.where(t, 0.95, 0.05).astype(np.float32)
    p[0][halo] = 0.6
    cols = np.flatnonzero(t[0].any(0))
    miss = cols[: len(cols) // 2] if half == 0 else cols[len(cols) // 2:]
    p[0][:, miss] = np.where(t[0][:, miss], 0.45, p[0][:, miss])
    p[0, 35:39:3, 2:20:3] = 0.95
    return p


@pytest.fixture(scope="module")
def selected(members, tmp_path_factory) -> Path:
    """medseg-select itself over two k-fold members (networks from ``members``' recipe, constructed
    OOF records: each member right on a different half of the box)."""
    from omegaconf import OmegaConf

    from medseg.pipelines.select import select
    from medseg.select.oof import save_oof_case
    from medseg.tasks import Task

    root = tmp_path_factory.mktemp("selected")
    task = Task("binary", ["vessel"])
    for name, half in (("kf_a", 0), ("kf_b", 1)):
        for k in range(2):
            fd = make_run(root / name / f"fold_{k}", BINARY, seed=30 + 2 * half + k, gain=GAIN)
            for i in range(3 * k, 3 * k + 3):
                t = _oof_target(i)
                save_oof_case(fd / "oof" / "cases" / f"c{i}.npz", task, torch.from_numpy(_oof_probs(t, half)),
                              torch.from_numpy(t), None)
    cfg = OmegaConf.create({"runs": [str(root / "kf_a"), str(root / "kf_b")], "ensemble": True, "ensemble_rounds": 5,
                            "temperature": True, "thresholds": True, "postprocessing": True, "n_boot": 200})
    select(cfg, root / "select")
    return root / "select" / "selection.json"


def test_export_of_a_medseg_select_result(selected, tmp_path):
    from medseg.pipelines.export import export_run

    spec = json.loads(selected.read_text())
    assert len(spec["members"]) == 2 and spec["thresholds"][0] != 0.5 and spec["postprocessing"][0]["rule"] != "none"
    pkg = export_run(compose_cfg("export", [f"selection={selected}"], tmp_path / "log"), tmp_path / "pkg")
    model = runner.Model(pkg)
    assert model.groups == [[0, 1], [2, 3]]
    image = _png(tmp_path / "img.png", (61, 70), seed=4, rgb=True)
    _, probs, masks = selection_probs(selected, image)
    case = runner.read_input(image, 3)
    result = model.predict(case["image"], case["roi"], case["meta"])
    assert np.abs(result["probs"] - probs.numpy()).max() <= ATOL
    assert (result["masks"] == masks.numpy()).all() and 0 < float(masks.float().mean()) < 1
    assert not torch.equal(probs > spec["thresholds"][0], masks)  # the chosen rule removed something
    card = (pkg / "model_card.md").read_text()
    assert all(f"| {s['step']} | {s['choice']} | {s['oof_dice']:.4f} |" in card for s in spec["steps"])
