"""SegmentationModule and the train pipeline in-process: learning, seeds, resume."""

from __future__ import annotations

import json

import pandas as pd
import torch

from medseg.pipelines.build import build_datamodule, build_module
from medseg.pipelines.train import train
from medseg.utils.checkpoint import load_checkpoint


def test_module_learns_a_batch(train_cfg, tiny_drive):
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    torch.manual_seed(0)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    first = None
    for _ in range(25):
        opt.zero_grad()
        loss = module.compute_loss(module(batch["image"]), batch["mask"])
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first


def test_full_image_prediction_has_input_size(train_cfg, tiny_drive):
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm).eval()
    image = torch.rand(1, 3, 61, 47)
    assert module.predict_logits(image).shape == (1, 1, 61, 47)


def test_same_seed_same_metrics(train_cfg, tiny_drive, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "seed=7"], tmp_path / name)
        runs.append(train(cfg, run_dir))
    assert runs[0] == runs[1]
    a = pd.read_csv(tmp_path / "a" / "per_image.csv")
    b = pd.read_csv(tmp_path / "b" / "per_image.csv")
    pd.testing.assert_frame_equal(a, b)


def test_resume_continues_from_last_checkpoint(train_cfg, tiny_drive, tmp_path):
    run_dir = tmp_path / "resumable"
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "trainer.max_epochs=1"], run_dir)
    train(cfg, run_dir)
    first = pd.read_csv(run_dir / "metrics.csv")
    # another seed: had epoch 0 been retrained, its row would differ from the first run's
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "trainer.max_epochs=3", "resume=true",
                        "seed=99"], run_dir)
    train(cfg, run_dir)
    epochs = pd.read_csv(run_dir / "metrics.csv")
    assert list(epochs["epoch"]) == [0, 1, 2]
    pd.testing.assert_series_equal(epochs.iloc[0][first.columns], first.iloc[0])
    state = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 3 * 4  # 3 epochs of 32 samples / batch 8
    assert json.loads((run_dir / "results.json").read_text())["test/dice"] >= 0
