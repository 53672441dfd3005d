"""The training stream does not depend on the number of loader workers: the same batches, and the same
weights after a few steps, with 0 and 1 workers (data.num_workers: auto may pick either per device)."""

from __future__ import annotations

import copy

import torch

from medseg.pipelines.build import build_datamodule, build_module


def _batches(dm, n: int, epoch: int = 0) -> list[dict]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    out = []
    for i, batch in enumerate(loader):
        if i == n:
            break
        out.append(batch)
    return out


def _data(train_cfg, tiny_drive, workers: int):
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}", f"data.num_workers={workers}",
                        "data.samples_per_epoch=24"])
    dm = build_datamodule(cfg)
    assert dm.num_workers == workers
    return cfg, dm


def test_zero_and_one_worker_give_the_same_batches_and_weights(train_cfg, tiny_drive):
    cfg, dm0 = _data(train_cfg, tiny_drive, 0)
    _, dm1 = _data(train_cfg, tiny_drive, 1)
    for epoch in (0, 1):  # the epoch reaches the worker's copy of the dataset (patches of (seed, epoch, i))
        b0, b1 = _batches(dm0, 3, epoch), _batches(dm1, 3, epoch)
        assert len(b0) == len(b1) == 3
        for x, y in zip(b0, b1):
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    assert not torch.equal(_batches(dm0, 1, 0)[0]["image"], _batches(dm0, 1, 1)[0]["image"])

    torch.manual_seed(0)
    module = build_module(cfg, dm0)
    weights = []
    for dm in (dm0, dm1):
        m = copy.deepcopy(module)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        for batch in _batches(dm, 3):
            opt.zero_grad()
            m.compute_loss(m(batch["image"]), batch["mask"]).backward()
            opt.step()
        weights.append(m.state_dict())
    assert any(not torch.equal(weights[0][k], module.state_dict()[k]) for k in weights[0])  # it trained
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_num_workers_auto_is_zero_on_cpu(train_cfg, tiny_drive):
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    assert cfg.data.num_workers == "auto"
    assert build_datamodule(cfg).num_workers == 0
