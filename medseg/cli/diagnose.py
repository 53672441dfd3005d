"""``medseg-diagnose``: clinical cross-check of one brain-tumour case (research software, not a diagnosis).

Examples::

    medseg-db load --demo
    medseg-diagnose case=data/BraTS/BraTS20_Training_001 patient=DEMO-001
    medseg-diagnose case=... run_dir=outputs/train/<run>     # segment with a trained 3D model
    medseg-diagnose case=... db=postgres db.url=postgresql+psycopg://user@host/db
    medseg-diagnose case=... "patient='1; DROP TABLE patients'"     # ids with spaces or ';': quote for Hydra
    medseg-diagnose case=... patient_file=id.txt                     # any id, no quoting at all
    MEDSEG_PATIENT_ID="O'Brien" medseg-diagnose case=...             # the same through the environment

Expected problems end with a one-line message and the error kind's exit status (see
:mod:`medseg.errors`): 2 a bad option or id (also a command line Hydra cannot parse, e.g. an unquoted
``patient=O'Brien``), 3 bad or missing input data, 5 the database.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors, debug_enabled
from medseg.cli._hydra import config_dir

log = logging.getLogger("medseg")

PROG = "medseg-diagnose"
PATIENT_ENV = "MEDSEG_PATIENT_ID"
QUOTING_HINT = ("quote values holding quotes, spaces, ';' or leading zeros for Hydra, e.g. \"patient='007'\" or "
                "\"patient=\\\"O'Brien\\\"\", or pass the id without any quoting: patient_file=<file> or "
                f"${PATIENT_ENV} (see docs/clinical.md)")


def patient_id(cfg: DictConfig) -> str | None:
    """The patient id from ``patient=``, ``patient_file=`` or ``$MEDSEG_PATIENT_ID`` (at most one), verbatim.

    Raises:
        ClinicalConfigError: more than one source, a non-string ``patient`` (Hydra read it as a number
            or boolean), an unreadable or empty ``patient_file``.
    """
    from medseg.apps.clinical import ClinicalConfigError

    try:
        values = (("patient", cfg.get("patient")), ("patient_file", cfg.get("patient_file")))
    except Exception as exc:  # an id containing ${...} is an OmegaConf interpolation that may not resolve
        raise ClinicalConfigError(f"patient= could not be read ({type(exc).__name__}): {QUOTING_HINT}") from None
    given = {k: v for k, v in (*values, (f"${PATIENT_ENV}", os.environ.get(PATIENT_ENV) or None)) if v is not None}
    if len(given) > 1:
        raise ClinicalConfigError(f"give the patient once: {' and '.join(given)} are both set")
    if "patient" in given:
        value = given["patient"]
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # Hydra reads 123 as an int; 007 and DEMO-1 stay text
        if not isinstance(value, str):
            raise ClinicalConfigError(f"patient= was read by Hydra as a {type(value).__name__}, not a text id "
                                      f"(its exact spelling is lost): {QUOTING_HINT}")
        return value
    if "patient_file" in given:
        path = Path(str(given["patient_file"])).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ClinicalConfigError(f"patient_file={path}: cannot read it ({type(exc).__name__})") from None
        if not lines or not lines[0]:
            raise ClinicalConfigError(f"patient_file={path}: the first line (the patient id) is empty")
        return lines[0]
    return given.get(f"${PATIENT_ENV}")


def run(cfg: DictConfig, out_dir: str):
    """Compose-time config -> :func:`medseg.apps.clinical.flow.diagnose` (used by the CLI and tests)."""
    from medseg.apps.clinical.flow import diagnose, make_atlas

    atlas = make_atlas(cfg.atlas.label_map, cfg.atlas.names, cfg.atlas.frame, kind=cfg.atlas.get("kind"))
    return diagnose(case_dir=cfg.case, patient_id=patient_id(cfg), db_url=cfg.db.url, out_dir=out_dir, seg=cfg.seg,
                    run_dir=cfg.run_dir, ckpt=str(cfg.ckpt), atlas=atlas, min_fraction=float(cfg.min_fraction),
                    modalities=list(cfg.modalities), symptoms=list(cfg.symptoms or []),
                    include_patient_id=bool(cfg.include_patient_id), device=str(cfg.get("device", "auto")),
                    min_dice=float(cfg.atlas.get("min_dice", 0.88)),
                    allow_case_mismatch=bool(cfg.get("allow_case_mismatch", False)))


@hydra.main(config_path=config_dir(), config_name="diagnose", version_base="1.3")
@clean_errors(PROG)
def _hydra_main(cfg: DictConfig) -> None:
    from medseg.apps.clinical.localise import describe

    result = run(cfg, HydraConfig.get().runtime.output_dir)
    check, reg, p = result.crosscheck, result.registration, result.patient
    print("\nResearch software, not a diagnosis.")
    print(f"  atlas:     {result.localisation.atlas}")
    if reg is not None:
        print(f"  registration: Dice {reg.dice:.3f} ({'ok' if reg.ok else 'BELOW'} floor {reg.min_dice:.2f}), "
              f"{reg.modality}, {reg.seconds:.1f} s")
    print(f"  identity:  {p.identity}")
    print(f"  tumour:    {describe(result.localisation)}")
    agreement = "n/a" if check.agreement is None else f"{check.agreement:.2f}"
    shares = ", ".join(f"{k} {'n/a' if v is None else f'{100 * v:.0f}%'}"
                       for k, v in (("image support", check.image_support), ("symptom support", check.symptom_support)))
    print(f"  agreement: {agreement} ({shares})")
    from medseg.apps.clinical.crosscheck import REASON_TEXT

    for r in check.regions:
        print(f"  region:    {r.name:32s} {REASON_TEXT[r.reason]}")
    for r in check.recommendations:
        print(f"  {r.kind + ':':10s} {r.name} ({r.detail}; treats {', '.join(r.structures)})")
    for m in check.messages:
        print(f"  note:      {m}")
    print(f"  report:    {result.report_html}")


def check_overrides(argv: list[str]) -> None:
    """Parse the command-line overrides the way Hydra will, before Hydra runs: a value its grammar rejects
    (e.g. an unquoted ``patient=O'Brien``) becomes a :class:`~medseg.apps.clinical.ClinicalConfigError` with a
    one-line message instead of Hydra's lexer traceback and exit 1."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from medseg.apps.clinical import ClinicalConfigError

    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-"):
            continue  # Hydra's own flags (--multirun, --cfg job, -c ...) and their values are Hydra's
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            key = arg.split("=", 1)[0]
            raise ClinicalConfigError(f"cannot parse the command-line override {key}=...: {QUOTING_HINT}") from None


def main() -> None:
    """Console-script entry: check the overrides, then run Hydra."""
    from medseg.errors import MedsegError

    args = sys.argv[1:]
    flags_with_value = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                        "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}
    overrides = [a for i, a in enumerate(args) if not (i > 0 and args[i - 1] in flags_with_value)]
    try:
        check_overrides(overrides)
    except MedsegError as exc:
        if debug_enabled():
            raise
        # one line: there is no traceback worth showing, Hydra has not started
        print(f"{PROG}: {exc.kind}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    _hydra_main()


if __name__ == "__main__":
    main()
