"""wandb with no account: an offline run folder holding the run config, validation overlays with masks,
and the evaluation tables; runs, folds and sweep trials grouped."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from medseg.loggers.wandb import api_key_configured, run_identity
from medseg.pipelines.train import train


def test_offline_run_folder_holds_config_overlays_and_tables(tiny_drive, train_cfg, monkeypatch):
    """Also: wandb alongside csv and tensorboard, and the opt-in checkpoint artifact."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")  # no stored key either: offline by default
    cfg, run_dir = train_cfg(["debug=smoke", "data=drive", f"data.root={tiny_drive}", "logger=[csv,tensorboard,wandb]",
                              "callbacks=wandb", "callbacks.wandb_media.log_model=true",
                              "model.base_channels=4", "data.samples_per_epoch=8", "data.baseline=null"])
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save({k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"},
                   run_dir / ".hydra" / "config.yaml")
    train(cfg, run_dir)
    import wandb

    wandb.teardown()  # flush the wandb service's buffered run record to disk

    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = runs[0] / "files" / "media"
    assert list((media / "images" / "val").glob("*.png"))            # the validation image ...
    assert list((media / "images" / "mask" / "val").glob("*.png"))   # ... with its masks
    # the report's overlays: with two test images, best and worst (issue #12 item 10: no case twice)
    assert len(list((media / "images" / "test").glob("*.png"))) == 2
    assert sorted(p.name.split("_", 1)[0] for p in (run_dir / "overlays").glob("*.png")) == ["best", "worst"]
    tables = list((media / "table" / "test").glob("per_image_*.table.json"))
    assert tables
    table = json.loads(tables[0].read_text())
    assert "dice" in table["columns"] and len(table["data"]) == 2      # the two test images
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"base_channels" in record  # the run config
    assert b"drive_unet" in record or b"train" in record  # the group (task name)
    assert b"model-" in record and b"best-epoch000.ckpt" in record  # the checkpoint artifact
    # the other loggers ran alongside
    assert (run_dir / "logs" / "csv" / "metrics.csv").is_file()
    assert list((run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_the_wandb_logger_adds_no_callback(train_cfg):
    """logger=wandb configures the logger only; the media callback is chosen in callbacks/."""
    cfg, _ = train_cfg(["logger=wandb"])
    assert list(cfg.logger) == ["wandb"]
    assert "wandb_media" not in cfg.callbacks
    default_callbacks = set(cfg.callbacks)
    cfg, _ = train_cfg(["logger=wandb", "callbacks=wandb"])
    assert cfg.callbacks.wandb_media._target_ == "medseg.callbacks.wandb_media.WandbMedia"
    assert set(cfg.callbacks) == default_callbacks | {"wandb_media"}  # the defaults stay
    cfg, _ = train_cfg(["logger=[csv,wandb]", "callbacks=[notify,wandb]"])
    assert {"notify", "wandb_media"} <= set(cfg.callbacks) and list(cfg.logger) == ["csv", "wandb"]


def test_api_key_detection(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not api_key_configured()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / "netrc").chmod(0o600)
    assert api_key_configured()
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert api_key_configured()


@pytest.mark.parametrize("fold, trial, expected", [
    (None, None, {"group": "drive_unet", "job_type": "train", "name": None}),
    (2, None, {"group": "drive_unet", "job_type": "fold", "name": "fold_2"}),
    (None, {"study_name": "vessels", "number": 7}, {"group": "vessels", "job_type": "trial", "name": "trial_7"}),
])
def test_runs_folds_and_trials_are_grouped(fold, trial, expected):
    assert run_identity("drive_unet", fold=fold, trial=trial) == expected
    assert run_identity("drive_unet", fold=fold, trial=trial, group="mine")["group"] == "mine"
