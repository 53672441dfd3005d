"""The speed policy of a run: precision, memory format, compile, threads and loader workers per device.

Every knob takes ``auto`` (the default of ``conf/trainer/*.yaml``, ``conf/train.yaml`` ``module:`` and
``conf/data/*.yaml``) or an explicit value, which is kept:

* ``trainer.precision: auto``: ``bf16-mixed`` on CPUs with AMX or AVX512-BF16 (``/proc/cpuinfo`` flags
  ``amx_bf16`` / ``avx512_bf16``; torch's ``get_cpu_capability()`` says ``AVX512`` on CPUs with and
  without bf16, so it cannot tell), never on other CPUs (bf16 is emulated there and slower); on CUDA
  ``bf16-mixed`` where ``torch.cuda.is_bf16_supported()``, else ``16-mixed``; ``32-true`` otherwise.
* ``module.channels_last: auto``: on where it measured faster (CUDA with mixed precision, CPU with
  bf16); ``module.compile: auto``: on CUDA only (on CPU the compiled step measured no faster than
  eager, 0.78-0.99x, so its compile time is never paid back: ``docs/performance.md``).
* ``trainer.threads: auto``: the CPUs this process may use (affinity, cgroup quota) divided among the
  medseg processes started together (multirun ``n_jobs``, DDP ranks on CPU, other live medseg
  trainings on the machine, see :func:`live_runs`). ``OMP_NUM_THREADS`` set by the user wins.
* ``data.num_workers: auto``: 0 on CPU (the patch loaders are two to three orders of magnitude faster
  than a CPU step, and a worker only takes a core from the step), ``min(4, cpus - 1)`` with a GPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("medseg")

AUTO = "auto"
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# set by the user before medseg started (recorded at import, before early_environment() adds its own)
USER_OMP = os.environ.get("OMP_NUM_THREADS")


def is_auto(value: object) -> bool:
    return value is None or str(value).lower() == AUTO


# ---------------------------------------------------------------- hardware
def max_time_string(seconds: float) -> str:
    """``DD:HH:MM:SS``, the form of Lightning's ``Trainer(max_time=...)`` (``trainer.max_time``)."""
    s = int(seconds)
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (empty where it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def cpu_bf16(flags: set[str] | None = None) -> str | None:
    """``AMX`` or ``AVX512-BF16`` when the CPU computes bf16 natively, else ``None``."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def _accelerator(accelerator: object) -> str:
    """``cpu`` or ``cuda`` for a Lightning ``accelerator`` value (``auto``/``gpu`` -> cuda when present)."""
    import torch

    acc = str(accelerator or AUTO).lower()
    if acc in ("gpu", "cuda"):
        return "cuda"
    if acc == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu" if acc == "cpu" else acc


def resolve_precision(precision: object, accelerator: object, flags: set[str] | None = None,
                      cuda_bf16: bool | None = None) -> str | int:
    """``trainer.precision``: an explicit value is kept; ``auto`` as in the module docstring."""
    if not is_auto(precision):
        return precision  # type: ignore[return-value]
    device = _accelerator(accelerator)
    if device == "cpu":
        return "bf16-mixed" if cpu_bf16(flags) else "32-true"
    if device == "cuda":
        if cuda_bf16 is None:
            import torch

            cuda_bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return "bf16-mixed" if cuda_bf16 else "16-mixed"
    return "32-true"


def autocast_dtype(precision: object):
    """The autocast dtype of a Lightning precision value (``None`` for full precision)."""
    import torch

    p = str(precision)
    if p.startswith("bf16"):
        return torch.bfloat16
    if p.startswith("16"):
        return torch.float16
    return None


def resolve_channels_last(value: object, accelerator: object, precision: object) -> bool:
    """Channels-last is on where it measured faster: with mixed precision (CPU bf16 or CUDA)."""
    if not is_auto(value):
        return bool(value)
    return autocast_dtype(precision) is not None


def resolve_compile(value: object, accelerator: object) -> bool:
    """``torch.compile`` on CUDA; off on CPU, where the compiled step measured no faster than eager."""
    if not is_auto(value):
        return bool(value)
    return _accelerator(accelerator) == "cuda"


# ------------------------------------------------------------------ threads
def available_cpus(cgroup_root: str | Path = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 ``cpu.max`` or v1 CFS quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        n = min(n, max(1, int(quota + 0.5)))
    return max(1, n)


def cgroup_cpu_quota(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """CPUs granted by the cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cfs_period_us``), or
    ``None`` without a quota."""
    root = Path(root)
    with contextlib.suppress(OSError, ValueError):
        parts = (root / "cpu.max").read_text().split()
        if parts and parts[0] != "max":
            return float(parts[0]) / float(parts[1] if len(parts) > 1 else 100000)
        if parts:
            return None
    with contextlib.suppress(OSError, ValueError):
        for v1 in (root / "cpu", root / "cpu,cpuacct"):
            if (v1 / "cpu.cfs_quota_us").exists():
                q = float((v1 / "cpu.cfs_quota_us").read_text())
                p = float((v1 / "cpu.cfs_period_us").read_text())
                return q / p if q > 0 and p > 0 else None
    return None


def runtime_dir() -> Path:
    """Where live medseg trainings register: ``$XDG_RUNTIME_DIR/medseg`` or ``/tmp/medseg-$UID``."""
    base = os.environ.get("MEDSEG_RUNTIME_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "medseg"
    return Path(tempfile.gettempdir()) / f"medseg-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_runs(folder: Path | None = None, exclude_group: str | None = None) -> dict[int, int]:
    """``{pid: processes}`` of the medseg trainings registered in ``folder`` that are still alive (dead
    ones are pruned), leaving out this process and those of the launch group ``exclude_group`` (the
    other jobs of this multirun, already counted by :func:`launched_together`). A run registers when it
    resolves its threads (:func:`register_run`)."""
    folder = runtime_dir() if folder is None else Path(folder)
    runs: dict[int, int] = {}
    for f in folder.glob("run-*.json") if folder.is_dir() else []:
        try:
            pid = int(f.stem.split("-", 1)[1])
            entry = json.loads(f.read_text())
        except (ValueError, OSError):
            continue
        if not _alive(pid):
            with contextlib.suppress(OSError):
                f.unlink()
            continue
        if pid == os.getpid() or (exclude_group and entry.get("group") == exclude_group):
            continue
        runs[pid] = max(1, int(entry.get("procs", 1)))
    return runs


def register_run(threads: int, procs: int = 1, group: str | None = None, folder: Path | None = None,
                 pid: int | None = None) -> Path | None:
    """Record this process as a live medseg training of ``procs`` processes (DDP ranks on CPU), removed
    at exit and pruned by the others when dead."""
    import atexit

    folder = runtime_dir() if folder is None else Path(folder)
    pid = os.getpid() if pid is None else pid
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"run-{pid}.json"
        tmp = folder / f".run-{pid}.tmp"
        tmp.write_text(json.dumps({"pid": pid, "threads": threads, "procs": procs, "group": group,
                                   "time": time.time()}))
        tmp.replace(path)
    except OSError as exc:  # a read-only /tmp only loses the sharing between independent runs
        log.debug("medseg: cannot register in %s (%s)", folder, exc)
        return None
    atexit.register(lambda: path.unlink(missing_ok=True))
    return path


def launched_together(cfg: Mapping | None = None, hydra_launcher: Mapping | None = None,
                      multirun: bool = False) -> int:
    """How many medseg processes of this launch share the machine: a multirun launcher's parallel
    jobs (joblib ``n_jobs``; the basic launcher runs one at a time), times DDP ranks on CPU per machine
    (``trainer.devices``; ``num_nodes`` are other machines)."""
    n = 1
    if multirun and hydra_launcher is not None:
        jobs = hydra_launcher.get("n_jobs")
        if jobs is not None:
            jobs = int(jobs)
            n = (os.cpu_count() or 1) if jobs < 0 else max(1, jobs)
    trainer = (cfg or {}).get("trainer") or {}
    if _accelerator(trainer.get("accelerator", "cpu")) == "cpu" and "ddp" in str(trainer.get("strategy") or ""):
        devices = trainer.get("devices", 1)
        n *= int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1
    return max(1, n)


@dataclass
class Threads:
    intra: int
    interop: int
    source: str  # auto | config | OMP_NUM_THREADS
    shared_by: int = 1  # medseg processes counted in the division
    notes: list[str] = field(default_factory=list)


def resolve_threads(value: object, together: int = 1, others: int = 0, cpus: int | None = None,
                    user_omp: str | None = None) -> Threads:
    """Threads of this process: ``OMP_NUM_THREADS`` set by the user wins, then an explicit integer,
    then ``auto``: ``cpus // (together + others)``, at least 1. ``together``: processes of this launch
    (:func:`launched_together`); ``others``: processes of the other live medseg trainings (a run
    started second counts the first; the first counts the second at its next epoch start through
    :func:`rebalance_threads`)."""
    if user_omp:
        with contextlib.suppress(ValueError):
            n = max(1, int(user_omp))
            return Threads(n, 1, "OMP_NUM_THREADS")
    if not is_auto(value):
        n = int(value)  # type: ignore[call-overload]
        if n < 1:
            from medseg.errors import ConfigError

            raise ConfigError(f"trainer.threads must be auto or a positive integer, got {value!r}")
        return Threads(n, 1 if n <= 2 else 2, "config")
    cpus = available_cpus() if cpus is None else cpus
    share = together + max(0, others)
    n = max(1, cpus // share)
    return Threads(n, 1 if n <= 2 else 2, AUTO, shared_by=share)


def early_environment(argv: list[str] | None = None) -> None:
    """Before torch is imported (libgomp reads these at load): ``OMP_WAIT_POLICY=PASSIVE`` when the
    machine is shared (a multirun, or another live medseg training), so idle OpenMP threads sleep
    instead of spinning on the cores the other runs compute on. The user's own setting is kept."""
    import sys

    argv = sys.argv if argv is None else argv
    sharing = any(a in ("-m", "--multirun") for a in argv) or bool(live_runs())
    if sharing:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_APPLIED: dict[str, object] = {}


def is_ddp_child() -> bool:
    """A DDP rank other than 0 started by Lightning's launcher (rank 0 registers for all of them)."""
    return os.environ.get("LOCAL_RANK", "0") not in ("", "0")


def configure_threads(cfg: Mapping, hydra_launcher: Mapping | None = None, multirun: bool = False,
                      group: str | None = None, register: bool = True) -> Threads:
    """Resolve ``trainer.threads`` and set torch's intra-op / inter-op threads (once per process; the
    inter-op count can only be set before the first parallel work, so call this first in the CLI).
    ``group`` names the launch (a multirun's sweep folder) whose jobs are counted once."""
    import torch

    if "threads" in _APPLIED:
        return _APPLIED["threads"]  # type: ignore[return-value]
    trainer = cfg.get("trainer") or {}
    together = launched_together(cfg, hydra_launcher, multirun)
    others = {} if is_ddp_child() else live_runs(exclude_group=group)
    t = resolve_threads(trainer.get("threads", AUTO), together=together, others=sum(others.values()),
                        user_omp=USER_OMP)
    torch.set_num_threads(t.intra)
    try:
        torch.set_num_interop_threads(t.interop)
    except RuntimeError:  # parallel work already ran in this process: keep torch's inter-op pool
        t.interop = torch.get_num_interop_threads()
        t.notes.append("inter-op threads already fixed")
    if t.shared_by > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # for child processes (loader workers)
    if register and not is_ddp_child() and _accelerator(trainer.get("accelerator", "cpu")) == "cpu":
        ddp = "ddp" in str(trainer.get("strategy") or "")
        register_run(t.intra, procs=launched_together(cfg) if ddp else 1, group=group)
    _APPLIED.update(threads=t, together=together, group=group)
    return t


def rebalance_threads() -> int | None:
    """Re-divide the CPUs among the live medseg trainings (called at every epoch start): a run that
    chose its threads alone gives half back when a second run starts beside it, and takes them again
    when that one ends. Only for ``auto`` threads; returns the new count when it changed."""
    import torch

    t = _APPLIED.get("threads")
    if not isinstance(t, Threads) or t.source != AUTO or is_ddp_child():
        return None
    group = _APPLIED.get("group")
    others = sum(live_runs(exclude_group=group if isinstance(group, str) else None).values())
    new = resolve_threads(AUTO, together=int(_APPLIED.get("together", 1)), others=others)  # type: ignore[call-overload]
    if new.intra == t.intra:
        return None
    torch.set_num_threads(new.intra)
    log.info("medseg: %d medseg run(s) share this machine now: threads %d -> %d", new.shared_by, t.intra, new.intra)
    t.intra, t.shared_by = new.intra, new.shared_by
    return new.intra


# ----------------------------------------------------------------- workers
def resolve_num_workers(value: object, accelerator: object = None, cpus: int | None = None) -> int:
    """``data.num_workers``: an explicit integer is kept; ``auto``: 0 on CPU, ``min(4, cpus - 1)`` on GPU."""
    if not is_auto(value):
        return int(value)  # type: ignore[call-overload]
    if _accelerator(accelerator) == "cpu":
        return 0
    cpus = available_cpus() if cpus is None else cpus
    return max(0, min(4, cpus - 1))


# -------------------------------------------------------------- start line
def startup_line(accelerator: object, precision: object, channels_last: bool, compile: bool,
                 threads: Threads | None, workers: int, flags: set[str] | None = None) -> str:
    """``medseg: cpu (AMD EPYC, AVX512-BF16) · bf16-mixed · channels-last · eager · threads 2/1 · workers 0``."""
    import torch

    device = _accelerator(accelerator)
    if device == "cuda" and torch.cuda.is_available():
        where = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        name = " ".join(cpu_name().split()[:2])
        bf16 = cpu_bf16(flags)
        where = f"{device} ({name}{', ' + bf16 if bf16 else ''})"
    if threads is None:
        th = f"threads {torch.get_num_threads()}/{torch.get_num_interop_threads()}"
    else:
        th = f"threads {threads.intra}/{threads.interop}"
        if threads.source == "OMP_NUM_THREADS":
            th += " (OMP_NUM_THREADS)"
        elif threads.shared_by > 1:
            th += f" (shared by {threads.shared_by} runs)"
    parts = [f"medseg: {where}", str(precision), "channels-last" if channels_last else "contiguous",
             "compiled" if compile else "eager", th, f"workers {workers}"]
    return " · ".join(parts)


@contextlib.contextmanager
def autocast(device_type: str, precision: object) -> Iterator[None]:
    """``torch.autocast`` for a mixed ``precision``; nothing for full precision."""
    import torch

    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device_type, dtype=dtype):
        yield
