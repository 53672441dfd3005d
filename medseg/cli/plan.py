"""``medseg-plan``: dataset fingerprint -> a commented, runnable experiment.

Examples::

    medseg-plan data=drive data.root=/data/DRIVE name=drive_planned budget_min=25
    medseg-plan data=brats_synth device=cpu memory_gb=24 name=brats_planned out=/tmp/conf/experiment/brats_planned.yaml
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.cli._hydra import config_dir


@hydra.main(config_path=config_dir(), config_name="plan", version_base="1.3")
@clean_errors("medseg-plan")
def main(cfg: DictConfig) -> None:
    from medseg.pipelines.plan import run_command, run_plan
    from medseg.plan.fingerprint import summary_lines

    hc = HydraConfig.get()
    fp, plan, out = run_plan(cfg, hc.runtime.output_dir, hc.runtime.choices["data"], config_dir())
    print("\n" + "\n".join(summary_lines(fp)))
    print("\nplan:")
    for c in plan.choices:
        print(f"  {c.key} = {c.value}\n      {c.reason}")
    print(f"\n  fingerprint: {hc.runtime.output_dir}/fingerprint.json\n  experiment:  {out}\n"
          f"  run it:      {run_command(out, config_dir())}")


if __name__ == "__main__":
    main()
