"""``medseg-select``: pick the pipeline to ship from out-of-fold predictions of k-fold / sweep folders.

Examples::

    medseg-select outputs/kfold/drive_unet_5fold_seed42 outputs/kfold/drive_smp_5fold_seed42
    medseg-select outputs/sweeps/vessels_quick postprocessing=false
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir

#: Hydra flags followed by a value (that value is not a run folder)
_TAKES_VALUE = ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp")


def positional_runs(argv: list[str]) -> list[str]:
    """``medseg-select DIR DIR key=value`` -> ``key=value runs=['DIR','DIR']`` (Hydra takes overrides only)."""
    out: list[str] = []
    runs: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _TAKES_VALUE:
            out += argv[i:i + 2]
            i += 2
            continue
        (out if a.startswith("-") or "=" in a else runs).append(a)
        i += 1
    if runs:
        out.append("runs=[" + ",".join("'" + r.replace("\\", "\\\\").replace("'", "\\'") + "'" for r in runs) + "]")
    return out


@hydra.main(config_path=config_dir(), config_name="select", version_base="1.3")
@clean_errors("medseg-select")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.select import select

    out = HydraConfig.get().runtime.output_dir
    spec = select(cfg, out)
    print(f"\nOOF Dice of the chosen pipeline: {spec['oof']['dice']:.4f} over {spec['oof']['cases']} cases "
          f"(ECE {spec['oof']['ece_before']:.4f} -> {spec['oof']['ece_after']:.4f} at T={spec['temperature']:.3f})")
    for s in spec["steps"]:
        gain = f"  gain {s['gain']:+.4f} [{s['gain_ci_low']:+.4f}, {s['gain_ci_high']:+.4f}]" if "gain" in s else ""
        print(f"  {s['step']:<15} {s['oof_dice']:.4f}{gain}  {s['choice']}")
    print(f"\n  selection: {out}/selection.json\n  report:    {out}/report.md\n"
          f"  apply it:  medseg-predict --config-dir {out} --config-name selected split=test")


def run() -> None:
    sys.argv[1:] = positional_runs(sys.argv[1:])
    main()


if __name__ == "__main__":
    run()
