"""Corrupt, truncated, foreign and hostile checkpoints through ``medseg-eval``, ``medseg-predict`` and
``medseg-train resume=...``; atomic checkpoint writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.faults.conftest import record, run_cli

pytestmark = pytest.mark.faults

COMMON = ["debug=smoke", "data=drive", "trainer.max_epochs=2", "data.samples_per_epoch=16", "model.base_channels=4"]


class Hostile:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory) -> Path:
    """One finished tiny run: the checkpoints every case corrupts a copy of."""
    tmp = tmp_path_factory.mktemp("ckpt_run")
    run = run_cli("medseg.cli.train", COMMON + [f"data.root={datasets['drive']}", f"hydra.run.dir={tmp / 'run'}"], tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp / "run"


def _bad_files(trained: Path, where: Path) -> dict[str, tuple[Path, str]]:
    """name -> (checkpoint file, what the message must say)."""
    where.mkdir(parents=True, exist_ok=True)
    last = trained / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    out = {}
    p = where / "zero.ckpt"
    p.write_bytes(b"")
    out["zero-byte"] = (p, "empty file")
    p = where / "truncated.ckpt"
    p.write_bytes(data[: len(data) // 2])
    out["truncated"] = (p, "truncated")
    p = where / "garbage.ckpt"
    p.write_bytes(b"\x00\x01not a checkpoint" * 100)
    out["garbage"] = (p, "cannot read checkpoint")
    p = where / "bitflip.ckpt"
    flipped = bytearray(data)
    mid = len(flipped) // 2
    flipped[mid: mid + 64] = bytes(b ^ 0xFF for b in flipped[mid: mid + 64])
    p.write_bytes(bytes(flipped))
    out["crc-damaged"] = (p, "corrupt")
    p = where / "hostile.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Hostile(where / "PWNED")}, p)
    out["hostile-pickle"] = (p, "refused: contains pickled code, not only weights")
    p = where / "list.ckpt"
    torch.save([torch.zeros(2)], p)
    out["not-a-dict"] = (p, "not a checkpoint")
    return out


CASES = ["zero-byte", "truncated", "garbage", "crc-damaged", "hostile-pickle", "not-a-dict"]


@pytest.mark.parametrize("tool", ["eval", "predict"])
@pytest.mark.parametrize("name", CASES)
def test_bad_checkpoint_is_refused_by_name(trained, tmp_path, name, tool):
    with record("checkpoint", f"{tool}/{name}", "exit 4"):
        path, says = _bad_files(trained, tmp_path / "bad")[name]
        out = tmp_path / "out"
        module = "medseg.cli.evaluate" if tool == "eval" else "medseg.cli.predict"
        extra = ["split=test"] if tool == "predict" else []
        run = run_cli(module, [f"run_dir={trained}", f"ckpt={path}", f"hydra.run.dir={out}", *extra], tmp_path)
        assert run.returncode == 4, run.output[-3000:]
        assert path.name in run.stderr and says in run.stderr, run.stderr[-2000:]
        assert "Traceback" not in run.output
        assert "weights_only=False" not in run.output  # never suggest executing the file
        assert not (tmp_path / "bad" / "PWNED").exists(), "the hostile checkpoint's code ran"
        assert not (out / "results.json").exists() and not (out / "predictions.csv").exists()


def test_checkpoint_of_another_model_is_refused(trained, datasets, tmp_path):
    with record("checkpoint", "eval/other-model", "exit 4"):
        run = run_cli("medseg.cli.evaluate", [f"run_dir={trained}", "ckpt=last", "overrides={model:{base_channels:8}}",
                                              f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
        assert run.returncode == 4, run.output[-3000:]
        assert "last.ckpt" in run.stderr and "does not fit this model" in run.stderr
        assert "Traceback" not in run.output


def test_missing_checkpoint_is_named(trained, tmp_path):
    with record("checkpoint", "eval/missing", "exit 4"):
        run = run_cli("medseg.cli.evaluate", [f"run_dir={trained}", f"ckpt={tmp_path / 'gone.ckpt'}",
                                              f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
        assert run.returncode == 4 and "gone.ckpt" in run.stderr and "Traceback" not in run.output


def _copy_run(trained: Path, dst: Path) -> Path:
    shutil.copytree(trained, dst)
    (dst / "results.json").unlink()
    return dst


def test_resume_with_truncated_last_falls_back_to_the_best(trained, datasets, tmp_path):
    with record("checkpoint", "resume/truncated-last-falls-back", "exit 0 + warning"):
        run_dir = _copy_run(trained, tmp_path / "run")
        last = run_dir / "checkpoints" / "last.ckpt"
        last.write_bytes(last.read_bytes()[:1000])
        run = run_cli("medseg.cli.train", COMMON + ["trainer.max_epochs=3", f"data.root={datasets['drive']}",
                                                    "resume=true", f"hydra.run.dir={run_dir}"], tmp_path)
        assert run.returncode == 0, run.output[-3000:]
        assert "last.ckpt" in run.output and "continuing from" in run.output and "best-epoch" in run.output
        assert "Traceback" not in run.output
        assert (run_dir / "results.json").is_file()


def test_resume_with_no_usable_checkpoint_stops_cleanly(trained, datasets, tmp_path):
    with record("checkpoint", "resume/all-checkpoints-corrupt", "exit 4"):
        run_dir = _copy_run(trained, tmp_path / "run")
        for p in (run_dir / "checkpoints").glob("*.ckpt"):
            p.write_bytes(b"")
        run = run_cli("medseg.cli.train", COMMON + [f"data.root={datasets['drive']}", "resume=true",
                                                    f"hydra.run.dir={run_dir}"], tmp_path)
        assert run.returncode == 4, run.output[-3000:]
        assert "last.ckpt" in run.stderr and "no checkpoint of this run is usable" in run.stderr
        assert "Traceback" not in run.output and not (run_dir / "results.json").exists()


def test_resume_from_a_hostile_checkpoint_is_refused(trained, datasets, tmp_path):
    with record("checkpoint", "resume/hostile-path", "exit 4"):
        path, _ = _bad_files(trained, tmp_path / "bad")["hostile-pickle"]
        run = run_cli("medseg.cli.train", COMMON + [f"data.root={datasets['drive']}", f"resume={path}",
                                                    f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
        assert run.returncode == 4 and "refused" in run.stderr and "hostile.ckpt" in run.stderr, run.output[-3000:]
        assert not (tmp_path / "bad" / "PWNED").exists()


def test_atomic_save_keeps_the_old_file_when_a_save_fails(tmp_path, monkeypatch):
    from medseg.utils import checkpoint as ck

    with record("checkpoint", "atomic-save/failed-write-keeps-old", "old file intact"):
        path = tmp_path / "last.ckpt"
        ck.save_atomic({"state_dict": {"w": torch.ones(3)}, "loops": {}}, path)
        real_save = torch.save

        def dying_save(obj, f, *a, **k):
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError("disk full")

        monkeypatch.setattr(ck.torch, "save", dying_save)
        with pytest.raises(OSError):
            ck.save_atomic({"state_dict": {"w": torch.zeros(3)}}, path)
        monkeypatch.setattr(ck.torch, "save", real_save)
        assert torch.equal(ck.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
        assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left
