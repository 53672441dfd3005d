"""The speed policy (medseg.utils.runtime): precision per device kind, threads from affinity / cgroup /
the registry of live runs, and bf16 steps that stay close to float32 and reproduce."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from medseg.utils import runtime
from medseg.utils.checkpoint import load_checkpoint

AMX = {"fpu", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
AVX512_BF16 = {"fpu", "avx512f", "avx512_bf16"}
NEITHER = {"fpu", "avx2", "avx512f"}


# ---------------------------------------------------------------- precision
@pytest.mark.parametrize("flags, expected", [(AMX, "bf16-mixed"), (AVX512_BF16, "bf16-mixed"), (NEITHER, "32-true"),
                                             (set(), "32-true")])
def test_cpu_precision_follows_the_bf16_flags(flags, expected):
    assert runtime.resolve_precision("auto", "cpu", flags=flags) == expected


def test_cpu_capability_is_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    flags = runtime.cpu_flags(info)
    assert runtime.cpu_bf16(flags) == "AMX"
    assert runtime.cpu_bf16(AVX512_BF16) == "AVX512-BF16" and runtime.cpu_bf16(NEITHER) is None
    assert runtime.cpu_name(info).startswith("Intel(R) Xeon(R)")
    assert runtime.cpu_flags(tmp_path / "missing") == set()


def test_cuda_precision_follows_bf16_support(monkeypatch):
    assert runtime.resolve_precision("auto", "gpu", cuda_bf16=True) == "bf16-mixed"
    assert runtime.resolve_precision("auto", "gpu", cuda_bf16=False) == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.resolve_precision("auto", "cuda") == "16-mixed"
    assert runtime.resolve_precision("auto", "auto") == "16-mixed"  # accelerator auto finds the GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.resolve_precision("auto", "gpu") == "bf16-mixed"


def test_explicit_precision_is_kept():
    assert runtime.resolve_precision("32-true", "cpu", flags=AMX) == "32-true"
    assert runtime.resolve_precision("bf16-mixed", "cpu", flags=NEITHER) == "bf16-mixed"
    assert runtime.resolve_precision(16, "gpu", cuda_bf16=True) == 16


def test_channels_last_and_compile_auto():
    assert runtime.resolve_channels_last("auto", "cpu", "bf16-mixed") is True
    assert runtime.resolve_channels_last("auto", "cpu", "32-true") is False
    assert runtime.resolve_channels_last(False, "gpu", "16-mixed") is False
    assert runtime.resolve_compile("auto", "cpu") is False
    assert runtime.resolve_compile("auto", "gpu") is True
    assert runtime.resolve_compile(True, "cpu") is True


def test_build_resolves_the_policy_into_the_module(train_cfg, tiny_drive, monkeypatch):
    from medseg.pipelines.build import build_datamodule, build_module

    monkeypatch.delenv("MEDSEG_PRECISION", raising=False)  # the suite's float32 pin (tests/conftest.py)
    monkeypatch.setattr(runtime, "cpu_flags", lambda *a: set(NEITHER))
    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    assert (module.eval_precision, module.channels_last, module._compiled) == ("32-true", False, [])
    monkeypatch.setattr(runtime, "cpu_flags", lambda *a: set(AMX))
    module = build_module(cfg, dm)
    assert (module.eval_precision, module.channels_last, module._compiled) == ("bf16-mixed", True, [])


def test_medseg_precision_replaces_auto_only(train_cfg, tiny_drive, monkeypatch):
    from medseg.errors import ConfigError
    from medseg.pipelines.build import resolve_precision

    monkeypatch.setattr(runtime, "cpu_flags", lambda *a: set(AMX))
    auto, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}"])
    explicit, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "trainer.precision=bf16-mixed"])
    monkeypatch.setenv("MEDSEG_PRECISION", "32-true")
    assert resolve_precision(auto) == "32-true" and resolve_precision(explicit) == "bf16-mixed"
    monkeypatch.delenv("MEDSEG_PRECISION")
    assert resolve_precision(auto) == "bf16-mixed"
    monkeypatch.setenv("MEDSEG_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="MEDSEG_PRECISION=fp8"):
        resolve_precision(auto)


# ------------------------------------------------------------------ threads
def test_available_cpus_from_affinity_and_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("max 100000\n")
    assert runtime.available_cpus(v2) == 8
    (v2 / "cpu.max").write_text("300000 100000\n")
    assert runtime.cgroup_cpu_quota(v2) == 3.0 and runtime.available_cpus(v2) == 3
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert runtime.available_cpus(v1) == 2  # 1.5 CPUs rounds to 2
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert runtime.available_cpus(v1) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert runtime.available_cpus(v2) == 1  # affinity below the quota


def test_threads_auto_divides_among_runs_and_the_user_wins():
    t = runtime.resolve_threads("auto", cpus=8)
    assert (t.intra, t.interop, t.source) == (8, 2, "auto")
    assert runtime.resolve_threads("auto", together=2, cpus=8).intra == 4
    assert runtime.resolve_threads("auto", together=2, others=1, cpus=2).intra == 1  # never 0
    t = runtime.resolve_threads("auto", together=1, others=1, cpus=2)
    assert (t.intra, t.interop, t.shared_by) == (1, 1, 2)
    assert runtime.resolve_threads(3, cpus=8).intra == 3
    t = runtime.resolve_threads(3, cpus=8, user_omp="1")
    assert (t.intra, t.source) == (1, "OMP_NUM_THREADS")
    from medseg.errors import ConfigError

    with pytest.raises(ConfigError, match="trainer.threads"):
        runtime.resolve_threads(0)


def test_launched_together_counts_multirun_jobs_and_cpu_ddp_ranks():
    cpu = {"trainer": {"accelerator": "cpu", "devices": 1}}
    ddp = {"trainer": {"accelerator": "cpu", "strategy": "ddp", "devices": 2, "num_nodes": 3}}
    gpu_ddp = {"trainer": {"accelerator": "gpu", "strategy": "ddp", "devices": 4}}
    assert runtime.launched_together(cpu) == 1
    assert runtime.launched_together(cpu, {"n_jobs": 3}, multirun=True) == 3
    assert runtime.launched_together(cpu, {"_target_": "basic"}, multirun=True) == 1  # sequential jobs
    assert runtime.launched_together(ddp) == 2  # ranks per machine; num_nodes are other machines
    assert runtime.launched_together(ddp, {"n_jobs": 2}, multirun=True) == 4
    assert runtime.launched_together(gpu_ddp) == 1


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_registry_prunes_dead_runs_and_skips_this_launch(tmp_path):
    alive = os.getppid()  # the process that started pytest: alive while the test runs
    dead = _dead_pid()
    runtime.register_run(1, folder=tmp_path, pid=alive)
    runtime.register_run(1, procs=2, group="sweep-a", folder=tmp_path, pid=alive + 10**7)  # not a live pid
    runtime.register_run(2, folder=tmp_path, pid=dead)
    runtime.register_run(2, folder=tmp_path)  # this process: never counted as another run
    assert runtime.live_runs(tmp_path) == {alive: 1}
    assert not (tmp_path / f"run-{dead}.json").exists()  # pruned
    runtime.register_run(1, procs=2, group="sweep-a", folder=tmp_path, pid=os.getpid() + 0)  # overwrite self
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        runtime.register_run(1, procs=2, group="sweep-a", folder=tmp_path, pid=child.pid)
        assert runtime.live_runs(tmp_path) == {alive: 1, child.pid: 2}
        assert runtime.live_runs(tmp_path, exclude_group="sweep-a") == {alive: 1}
    finally:
        child.kill()
        child.wait()
    assert runtime.live_runs(tmp_path) == {alive: 1}


def test_second_run_takes_its_share_and_the_first_rebalances(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "available_cpus", lambda *a: 2)
    monkeypatch.setattr(runtime, "USER_OMP", None)
    monkeypatch.setattr(runtime, "_APPLIED", {})
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    t = runtime.configure_threads({"trainer": {"accelerator": "cpu", "threads": "auto"}}, register=False)
    assert t.intra == 2 and calls == [2]  # alone on 2 CPUs
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        runtime.register_run(1, folder=tmp_path, pid=other.pid)  # a second training started beside it
        assert runtime.rebalance_threads() == 1 and calls[-1] == 1
        assert runtime.rebalance_threads() is None  # nothing changed since
    finally:
        other.kill()
        other.wait()
    assert runtime.rebalance_threads() == 2 and calls[-1] == 2  # the other run ended


def test_startup_line_names_the_policy():
    t = runtime.Threads(2, 1, "auto", shared_by=2)
    line = runtime.startup_line("cpu", "bf16-mixed", True, False, t, 0, flags=AMX)
    assert line.startswith("medseg: cpu (") and ", AMX)" in line
    assert "bf16-mixed · channels-last · eager · threads 2/1 (shared by 2 runs) · workers 0" in line
    line = runtime.startup_line("cpu", "32-true", False, False, runtime.Threads(1, 1, "OMP_NUM_THREADS"), 0,
                                flags=NEITHER)
    assert "AMX" not in line and "contiguous" in line and "threads 1/1 (OMP_NUM_THREADS)" in line


def test_num_workers_auto():
    assert runtime.resolve_num_workers("auto", "cpu", cpus=16) == 0
    assert runtime.resolve_num_workers("auto", "gpu", cpus=16) == 4
    assert runtime.resolve_num_workers("auto", "gpu", cpus=2) == 1
    assert runtime.resolve_num_workers(3, "cpu") == 3


# ------------------------------------------------------------- bf16 numerics
def _unet_batch():
    from medseg.models.unet import UNet

    torch.manual_seed(0)
    net = UNet(in_channels=1, out_channels=1, base_channels=8, depth=3)
    x = torch.randn(4, 1, 32, 32)
    y = (torch.rand(4, 1, 32, 32) > 0.7).float()
    return net, x, y


def test_bf16_step_is_finite_and_close_to_float32():
    from monai.losses import DiceLoss

    net, x, y = _unet_batch()
    dice, bce = DiceLoss(sigmoid=True, batch=True), torch.nn.BCEWithLogitsLoss()

    def loss_fn(logits, target):  # the shipped bce_dice loss
        return bce(logits, target) + dice(logits, target)

    ref = loss_fn(net(x), y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x.contiguous(memory_format=torch.channels_last))
        loss = loss_fn(logits.float(), y)
    assert logits.dtype == torch.bfloat16  # autocast really ran the convolutions in bf16
    assert torch.isfinite(loss) and abs(loss.item() - ref.item()) < 0.02 * abs(ref.item())
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    torch.optim.Adam(net.parameters(), lr=1e-3).step()
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in net.parameters())


def test_predict_logits_autocasts_and_returns_float32(train_cfg, tiny_drive):
    from medseg.pipelines.build import build_datamodule, build_module

    cfg, _ = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "trainer.precision=bf16-mixed"])
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm).eval()
    image = torch.rand(1, dm.in_channels, 64, 64)
    seen = []
    module.net.register_forward_hook(lambda m, i, o: seen.append((torch.is_autocast_enabled("cpu"), o.dtype)))
    with torch.no_grad():
        out = module.predict_logits(image)
        module.eval_precision = "32-true"
        ref = module.predict_logits(image)
    assert seen and seen[0] == (True, torch.bfloat16) and seen[-1] == (False, torch.float32)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (1, 1, 64, 64)
    assert (torch.sigmoid(out) - torch.sigmoid(ref)).abs().max() < 0.05


def test_same_seed_same_run_with_bf16(train_cfg, tiny_drive, tmp_path):
    from medseg.pipelines.train import train

    results = []
    for name in ("a", "b"):
        cfg, run_dir = train_cfg(["debug=smoke", f"data.root={tiny_drive}", "trainer.precision=bf16-mixed",
                                  "evaluate=false", "seed=7"], run_dir=tmp_path / name)
        results.append(train(cfg, run_dir))
        results.append(load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["state_dict"])
    assert results[0] == results[2]
    assert results[1].keys() == results[3].keys()
    assert all(torch.equal(results[1][k], results[3][k]) for k in results[1])
