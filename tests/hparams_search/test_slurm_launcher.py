"""The SLURM launcher config follows the trainer: one task per device, one SLURM node per trainer node."""

from __future__ import annotations


def test_slurm_tasks_follow_trainer_devices_and_nodes(train_cfg):
    cfg, _ = train_cfg(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                        "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert launcher.partition == "gpu"
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.sync_batchnorm is True
