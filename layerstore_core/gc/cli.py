"""``layerstore gc``: collect garbage from the command line, with progress on a terminal.

Progress (:mod:`layerstore_core.progress`) goes to stderr and only when stderr is a terminal;
``--json`` prints the report as JSON on stdout, otherwise a summary line (and, in a dry run, what
would go).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from ..progress import Progress, terminal_progress
from ..registry.leases import LeaseBusyError, LeaseLostError, fleet_lease
from .report import GCReport

if TYPE_CHECKING:
    from ..driver import StorageDriver
    from ..registry import Registry
    from ..registry.rediscache import Client
    from ..server.config import Config


def add_parser(sub: Any) -> None:
    """Register the ``gc`` subcommand on the CLI's subparsers."""
    gc = sub.add_parser("gc", help="delete unreferenced blobs and manifests (safe while serving)")
    gc.add_argument("--config", help="Distribution-style config.yml")
    gc.add_argument("--dry-run", action="store_true", help="only report what would go")
    gc.add_argument("--delete-untagged", action="store_true",
                    help="also delete manifests no tag reaches (children of tagged indexes stay)")
    gc.add_argument("--grace", help="spare anything younger than this Go duration "
                    "(default: storage.maintenance.gc.grace, 1h)")
    gc.add_argument("--json", action="store_true", help="print the report as JSON")
    gc.set_defaults(func=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    from ..cli import CLIError, _load_config, command_logging, duration_flag, load_configured_driver

    config = _load_config(args.config)
    grace = duration_flag(args.grace, "--grace", config.gc.grace)
    command_logging(config.log_level)
    client = _redis(config)
    registry = _registry(config, load_configured_driver(config), client)
    options: dict[str, Any] = {
        "delete_untagged": args.delete_untagged or config.gc.deleteuntagged,
        "grace": dt.timedelta(seconds=grace),
        "dry_run": args.dry_run,
        "retention": config.retention,
        "purge_uploads_older_than": (
            dt.timedelta(seconds=config.purge.age) if config.purge.enabled else None
        ),
        "lease": fleet_lease(registry.driver, client, "gc", strict=True),
    }
    try:
        with terminal_progress(quiet=args.json) as progress:
            report = _run(registry, options, progress)
    except (LeaseBusyError, LeaseLostError) as exc:
        raise CLIError(f"gc: {exc}") from None
    _print(report, args.json)
    return 0


def _redis(config: Config) -> Client | None:
    """The ``redis`` section's client: the fleet's gc lease is taken where the servers take it."""
    if config.redis is None:
        return None
    from ..server.fleet import redis_client  # redis-py: the server extra, only when configured

    return redis_client(config)


def _registry(config: Config, driver: StorageDriver, client: Client | None) -> Registry:
    """The registry with the servers' blob-descriptor cache, so a sweep invalidates theirs."""
    from ..registry import Registry

    if config.blobdescriptor_cache != "redis":
        return Registry(driver)  # an in-process cache would die with this command anyway
    from ..server.fleet import blob_cache

    return Registry(driver, blob_cache(config, client))


def _run(registry: Any, options: dict[str, Any], progress: Progress) -> GCReport:
    report: GCReport = registry.collect_garbage(progress=progress, **options)
    return report


def _print(report: GCReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    if report.dry_run:
        for name, tag in report.tags_deleted:
            print(f"would untag {name}:{tag}")
        for name, digest in report.manifests_deleted:
            print(f"would delete manifest {name}@{digest}")
        for digest in report.blobs_deleted:
            print(f"would delete blob {digest}")
    print(report.summary())
