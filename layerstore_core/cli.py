"""The ``layerstore`` command: serve, drivers, purge-uploads, gc, copy and verify.

Server dependencies are imported inside the subcommands, so ``layerstore drivers`` works on a
core-only install and a missing extra is reported with the command that installs it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import discovery
from .params import ParameterError, describe_params

log = logging.getLogger(__name__)

#: Where Distribution looks for its config when none is given on the command line.
CONFIG_ENV = "REGISTRY_CONFIGURATION_PATH"


class CLIError(Exception):
    """A user-facing failure: printed without a traceback, exit status 1."""


def _load_config(path: str | None, overrides: dict[str, str] | None = None) -> Any:
    try:
        from .server.config import ConfigError, load_config
    except ImportError as exc:
        raise CLIError(
            f"the server extra is not installed ({exc.name} missing): "
            "pip install 'layerstore-core[server]'"
        ) from None
    try:
        return load_config(path or os.environ.get(CONFIG_ENV) or None,
                           {**os.environ, **(overrides or {})})
    except ConfigError as exc:
        raise CLIError(f"configuration error: {exc}") from None


def load_configured_driver(config: Any) -> Any:
    """The storage driver a validated config names; a bad driver setting is a CLIError."""
    try:
        return discovery.load_driver(config.driver, **dict(config.driver_params))
    except (discovery.DriverNotFoundError, discovery.DriverLoadError, ParameterError) as exc:
        raise CLIError(f"storage.{config.driver}: {exc}") from None


def duration_flag(value: str | None, flag: str, default: float) -> float:
    """A duration flag (``--age``, ``--grace``), or the config's value when not given."""
    from .server.config import ConfigError, parse_duration

    try:
        return parse_duration(value, flag) if value else default
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


def command_logging(level: int | str) -> None:
    """Log lines of a one-shot command: level, logger, message (no timestamps)."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _serve_overrides(args: argparse.Namespace) -> dict[str, str]:
    """``--addr`` and ``--root`` as the ``REGISTRY_`` variables they stand for (which they beat)."""
    out = {}
    if args.addr:
        out["REGISTRY_HTTP_ADDR"] = args.addr
    if args.root:
        out["REGISTRY_STORAGE"] = "filesystem"
        out["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"] = args.root
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    with contextlib.suppress(ImportError):  # without the extra, _load_config says so
        from .server.logsetup import hold

        hold()  # the config's warnings are written once logging is set up
    config = _load_config(args.config, _serve_overrides(args))
    import dataclasses

    from .server.config import ConfigError
    from .server.serve import serve

    if args.workers is not None:
        if args.workers < 1:
            raise CLIError("--workers: expected at least 1")
        config = dataclasses.replace(config, workers=args.workers)

    try:
        serve(config)
    except (discovery.DriverNotFoundError, discovery.DriverLoadError, ParameterError) as exc:
        raise CLIError(f"storage.{config.driver}: {exc}") from None
    except ConfigError as exc:  # found only when the server starts (files it reads)
        raise CLIError(f"configuration error: {exc}") from None
    return 0


def cmd_drivers(args: argparse.Namespace) -> int:
    names = discovery.available_drivers()
    if not names:
        print("no storage drivers installed")
        return 0
    for name in names:
        try:
            cls = discovery.driver_class(name)
        except (discovery.DriverLoadError, discovery.DriverNotFoundError) as exc:
            print(f"{name}: unavailable ({exc})")
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name}: {doc[0].replace('``', '') if doc else cls.__qualname__}")
        rows = describe_params(cls.Params)
        if not rows:
            print("    (no parameters)")
        width = max((len(r[0]) for r in rows), default=0)
        for pname, kind, default in rows:
            said = "required" if default == "(required)" else f"default {default}"
            print(f"    {pname.ljust(width)}  {kind}  {said}")
    missing = sorted(set(discovery.KNOWN_PACKAGES) - set(names))
    for name in missing:
        print(f"({name}: not installed; {discovery.install_hint(name)})")
    return 0


def cmd_purge_uploads(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from .progress import terminal_progress
    from .registry.purge import purge_uploads

    age = duration_flag(args.age, "--age", config.purge.age)
    command_logging(config.log_level)
    # Each upload is printed once below; the purge's own line per upload is for the server's log.
    logging.getLogger(purge_uploads.__module__).setLevel(logging.WARNING)
    driver = load_configured_driver(config)
    with terminal_progress(quiet=args.json) as progress:
        purged = _purge_leased(config, driver, dt.timedelta(seconds=age), args.dry_run, progress)
    if args.json:
        uploads = [{"repository": u.repository, "id": u.id, "started_at": u.started_at.isoformat()}
                   for u in purged]
        print(json.dumps({"dry_run": args.dry_run, "age_seconds": age, "uploads": uploads},
                         indent=2))
        return 0
    verb = "would purge" if args.dry_run else "purged"
    for item in purged:
        print(f"{verb} {item.repository} {item.id} (started {item.started_at.isoformat()})")
    print(f"{verb} {len(purged)} upload(s)")
    return 0


def _purge_leased(config: Any, driver: Any, age: dt.timedelta, dry_run: bool,
                  progress: Any) -> list[Any]:
    """Purge under the fleet's ``uploadpurge`` lease, the one the servers' purgers take.

    Through Redis when the config has a ``redis`` section, else in the storage. A dry run
    deletes nothing, so it takes no lease. Another holder is a CLIError naming it (exit 1).
    """
    from .gc.cli import _redis
    from .registry.leases import LeaseBusyError, LeaseLostError, fleet_lease
    from .registry.purge import purge_uploads

    if dry_run:
        return purge_uploads(driver, age, True, progress=progress)
    lease = fleet_lease(driver, _redis(config), "uploadpurge")
    try:
        lease.acquire()
    except LeaseBusyError as exc:
        raise CLIError(f"purge-uploads: another purger is running ({exc}); "
                       "nothing purged") from None
    try:
        return purge_uploads(driver, age, False, lease=lease, progress=progress)
    except LeaseLostError as exc:
        raise CLIError(f"purge-uploads: stopped, the lease was lost ({exc})") from None
    finally:
        lease.release()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerstore", description="A container registry's storage layer and HTTP API."
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('layerstore-core')}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the OCI Distribution API")
    serve.add_argument("--config", help=f"Distribution-style config.yml (or ${CONFIG_ENV})")
    serve.add_argument("--addr", help="listen on HOST:PORT (overrides http.addr)")
    serve.add_argument("--root", help="serve filesystem storage in this directory "
                                      "(overrides storage)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="processes sharing the port (default: http.workers, else 1)")
    serve.set_defaults(func=cmd_serve)
    drivers = sub.add_parser("drivers", help="list installed storage drivers and parameters")
    drivers.set_defaults(func=cmd_drivers)
    purge = sub.add_parser("purge-uploads", help="remove stale uploads")
    purge.add_argument("--config", help="Distribution-style config.yml")
    purge.add_argument("--age", help="minimum age, a Go duration such as 168h (default: config)")
    purge.add_argument("--dry-run", action="store_true", help="only list what would go")
    purge.add_argument("--json", action="store_true", help="print what was purged as JSON")
    purge.set_defaults(func=cmd_purge_uploads)
    from .ops.cli import register as register_copy_verify  # ops imports CLIError from here

    register_copy_verify(sub)

    from .gc.cli import add_parser as add_gc

    add_gc(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CLIError as exc:
        print(f"layerstore: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `layerstore drivers | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not complain either
        return 141
    return result


if __name__ == "__main__":
    sys.exit(main())
