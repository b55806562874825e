"""``layerstore gc``: collect garbage from the command line, with progress on a terminal.

Progress (rich) goes to stderr and only when stderr is a terminal; ``--json`` prints the report
as JSON on stdout, otherwise a summary line (and, in a dry run, what would go).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..registry.leases import LeaseBusyError, LeaseLostError, fleet_lease
from .report import GCReport, NoProgress, Progress

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

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


class RichBar:
    """Phases as a rich progress bar: objects seen, blobs to delete and deleted, bytes freed."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar: RichProgress = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[freed]}"), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._task: TaskID | None = None
        self._bytes = 0

    def __enter__(self) -> RichBar:
        self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        if self._task is not None:
            self._bar.update(self._task, visible=False)
        self._task = self._bar.add_task(name, total=total, freed="")

    def advance(self, items: int = 1, size: int = 0) -> None:
        if self._task is not None:
            self._bytes += size
            freed = f"{self._bytes / 1e6:.1f} MB" if self._bytes else ""
            self._bar.update(self._task, advance=items, freed=freed)


def cmd_gc(args: argparse.Namespace) -> int:
    from ..cli import CLIError, _load_config, load_configured_driver
    from ..server.config import ConfigError, parse_duration

    config = _load_config(args.config)
    try:
        grace = parse_duration(args.grace, "--grace") if args.grace else config.gc.grace
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    logging.basicConfig(level=config.log_level, format="%(levelname)s %(name)s: %(message)s")
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
        if sys.stderr.isatty():
            with RichBar() as bar:
                report = _run(registry, options, bar)
        else:
            report = _run(registry, options, NoProgress())
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
