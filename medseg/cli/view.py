"""``medseg-view RUN_OR_FOLDER [RUN_OR_FOLDER ...]``: a local web app over run, k-fold, evaluation
and ensemble folders (case browser, case view, compare, try it, curves). See docs/viewer.md.

Examples::

    medseg-view outputs/train/2026-11-23_10-00-00
    medseg-view outputs/kfold/handbone_5fold outputs/ensemble/2026-11-23_12-00-00 --port 8765
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import medseg  # noqa: F401
from medseg.cli._errors import clean_errors
from medseg.errors import ConfigError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="medseg-view", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run, k-fold, evaluation or ensemble folders")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port)")
    p.add_argument("--cache-mb", type=int, default=512, help="memory for cached case views (default 512)")
    p.add_argument("--max-upload-mb", type=int, default=64, help="largest upload accepted in 'Try it' (default 64)")
    p.add_argument("--clinical-db", default=None, metavar="URL",
                   help="clinical database (e.g. sqlite:///clinical.db, see medseg-db): adds the brain-tumour "
                        "cross-check to BraTS cases")
    p.add_argument("--allow-host", action="append", default=[],
                   help="extra Host header to accept (e.g. the machine's name when binding elsewhere)")
    return p.parse_args(argv)


@clean_errors("medseg-view")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: give a port between 0 and 65535")
    if args.cache_mb < 16 or args.max_upload_mb < 1:
        raise ConfigError("--cache-mb must be at least 16 and --max-upload-mb at least 1")
    import uvicorn

    from medseg.apps.viewer import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    hosts = ["127.0.0.1", "localhost", "[::1]", "::1", args.host, *args.allow_host]
    app = create_app(args.runs, cache_mb=args.cache_mb, max_upload_mb=args.max_upload_mb, allowed_hosts=hosts,
                     clinical_db=args.clinical_db)
    models, errors = app.state.store.models, app.state.errors
    print(f"medseg-view: {len(models)} model(s) from {len(args.runs)} folder(s)", flush=True)
    for e in errors:
        print(f"medseg-view: cannot read {e.source}: {e.message}", file=sys.stderr, flush=True)
    if not _is_loopback(args.host):
        print(f"medseg-view: WARNING: binding {args.host}: other machines can reach this app (no login); "
              "the default 127.0.0.1 keeps it on this machine", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    startup = server.startup

    async def announce(sockets=None):
        await startup(sockets)
        for s in server.servers:
            for sock in s.sockets:
                host, port = sock.getsockname()[:2]
                print(f"medseg-view: serving on http://{host}:{port}/  (Ctrl-C stops)", flush=True)

    server.startup = announce  # type: ignore[method-assign]  # print the bound address once listening
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
