"""``medseg-db``: create and fill the clinical database from CSV files.

Examples::

    medseg-db load --demo                                  # the fictional demo set, into the default SQLite file
    medseg-db load --csv-dir my_tables/ --replace --url postgresql+psycopg://user@host/db
    medseg-db counts

The default URL is ``$MEDSEG_DB_URL``, else ``sqlite:///<$MEDSEG_ROOT or .>/data/clinical.db`` (the
same file ``medseg-diagnose`` uses). CSV layout: see ``docs/clinical.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from medseg.cli._errors import clean_errors


def default_url() -> str:
    if os.environ.get("MEDSEG_DB_URL"):
        return os.environ["MEDSEG_DB_URL"]
    root = Path(os.environ.get("MEDSEG_ROOT") or ".").resolve()
    return f"sqlite:///{root / 'data' / 'clinical.db'}"


@clean_errors("medseg-db")
def main(argv: list[str] | None = None) -> int:
    """Exit 0; a problem exits with its kind's status (2 option, 3 CSV data, 5 database), one message."""
    from medseg.apps.clinical import db

    p = argparse.ArgumentParser(prog="medseg-db", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="load <table>.csv files into the database (one transaction)")
    src = load.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv-dir", help="folder with patients.csv, symptoms.csv, ... (any subset)")
    src.add_argument("--demo", action="store_true", help="the fictional demo set shipped with medseg")
    load.add_argument("--replace", action="store_true", help="empty the loaded tables (and their children) first")
    load.add_argument("--url", default=default_url(), help="SQLAlchemy URL (default: %(default)s)")
    counts = sub.add_parser("counts", help="rows per table")
    counts.add_argument("--url", default=default_url(), help="SQLAlchemy URL (default: %(default)s)")
    args = p.parse_args(argv)
    if args.command == "load" and not args.demo and not Path(args.csv_dir).is_dir():
        # before connecting: connect() creates the SQLite file, which would be left behind empty
        raise db.ClinicalDataError(f"{args.csv_dir}: CSV folder not found (expected <table>.csv files)")
    engine = db.connect(args.url)
    try:
        if args.command == "load":
            loaded = db.load_csv_dir(engine, db.DEMO_DIR if args.demo else args.csv_dir, replace=args.replace)
            print(f"loaded into {db.safe_url(args.url)}: " + ", ".join(f"{t} {n}" for t, n in loaded.items()))
        else:
            for table, n in db.table_counts(engine).items():
                print(f"{table:18s} {n}")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
