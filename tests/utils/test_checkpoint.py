"""load_checkpoint refuses bad files by name; save_atomic replaces whole files only."""

from __future__ import annotations

import os

import pytest
import torch

from medseg.errors import CheckpointError
from medseg.utils.checkpoint import AtomicCheckpointIO, is_valid_checkpoint, load_checkpoint, save_atomic


class Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_good_checkpoint_round_trips(tmp_path):
    p = save_atomic({"state_dict": {"w": torch.arange(3.0)}, "loops": {}}, tmp_path / "a.ckpt")
    assert torch.equal(load_checkpoint(p)["state_dict"]["w"], torch.arange(3.0))
    assert is_valid_checkpoint(p)
    assert [f.name for f in tmp_path.iterdir()] == ["a.ckpt"]


@pytest.mark.parametrize("kind,match", [("missing", "not found"), ("empty", "empty file"),
                                        ("truncated", "truncated"), ("garbage", "cannot read checkpoint"),
                                        ("hostile", "refused: contains pickled code"), ("list", "not a checkpoint")])
def test_bad_checkpoints_name_the_file(tmp_path, kind, match):
    p = tmp_path / f"{kind}.ckpt"
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(100)}}, good)
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(good.read_bytes()[:300])
    elif kind == "garbage":
        p.write_bytes(b"nonsense" * 50)
    elif kind == "hostile":
        torch.save({"x": Evil()}, p)
    elif kind == "list":
        torch.save([1, 2], p)
    with pytest.raises(CheckpointError, match=match) as exc:
        load_checkpoint(p)
    assert str(p) in str(exc.value)
    assert "weights_only=False" not in str(exc.value)


def test_checkpoint_io_saves_atomically_and_loads_safely(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        io.load_checkpoint(path)
