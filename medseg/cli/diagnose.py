"""``medseg-diagnose``: clinical cross-check of one brain-tumour case (research software, not a diagnosis).

Examples::

    medseg-db load --demo
    medseg-diagnose case=data/BraTS/BraTS20_Training_001 patient=DEMO-001
    medseg-diagnose case=... run_dir=outputs/train/<run>     # segment with a trained 3D model
    medseg-diagnose case=... db=postgres db.url=postgresql+psycopg://user@host/db

Expected problems (missing patient, modality or segmentation, empty tumour, unreachable database)
end with a one-line message and exit status 2, not a traceback.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._hydra import config_dir

log = logging.getLogger("medseg")


def run(cfg: DictConfig, out_dir: str):
    """Compose-time config -> :func:`medseg.clinical.flow.diagnose` (used by the CLI and tests)."""
    from medseg.clinical.flow import diagnose, make_atlas

    atlas = make_atlas(cfg.atlas.label_map, cfg.atlas.names, cfg.atlas.frame)
    return diagnose(case_dir=cfg.case, patient_id=None if cfg.patient is None else str(cfg.patient),
                    db_url=cfg.db.url, out_dir=out_dir, seg=cfg.seg, run_dir=cfg.run_dir, ckpt=str(cfg.ckpt),
                    atlas=atlas, min_fraction=float(cfg.min_fraction), modalities=list(cfg.modalities),
                    symptoms=list(cfg.symptoms or []), include_patient_id=bool(cfg.include_patient_id),
                    device=str(cfg.get("device", "auto")))


@hydra.main(config_path=config_dir(), config_name="diagnose", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from medseg.clinical import ClinicalError
    from medseg.clinical.localise import describe

    try:
        result = run(cfg, HydraConfig.get().runtime.output_dir)
    except ClinicalError as exc:
        print(f"medseg-diagnose: error: {exc}", file=sys.stderr)
        sys.exit(2)
    check = result.crosscheck
    print("\nResearch software, not a diagnosis.")
    print(f"  tumour:    {describe(result.localisation)}")
    agreement = "n/a (no known symptom)" if check.agreement is None else f"{check.agreement:.2f}"
    print(f"  agreement: {agreement} (image support {check.image_support}, symptom support {check.symptom_support})")
    for r in check.regions:
        print(f"  region:    {r.name:28s} {r.reason}")
    for r in check.recommendations:
        print(f"  {r.kind + ':':10s} {r.name} ({r.detail}; treats {', '.join(r.structures)})")
    for m in check.messages:
        print(f"  note:      {m}")
    print(f"  report:    {result.report_html}")


if __name__ == "__main__":
    main()
