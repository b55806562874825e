"""The ``copy`` and ``verify`` subcommands (registered by :mod:`layerstore_core.cli`).

A store on the command line is a Distribution-style config file (its ``storage:`` section, no
``REGISTRY_`` overrides: two stores cannot share one environment) or a spec
``driver:key=value,key=value`` (``s3:bucket=reg,region=eu-west-1``,
``filesystem:rootdirectory=/srv/registry``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from typing import Any

from .. import discovery
from ..driver import StorageDriver
from ..errors import StorageDriverError
from ..params import ParameterError
from ..progress import terminal_progress
from .copy import CopyError, CopyOptions, copy_store
from .verify import VerifyOptions, count_by_kind, repair, verify_store

_SPEC = re.compile(r"^(?P<driver>[A-Za-z0-9_.-]+):(?P<params>.*)$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _cli_error(message: str) -> Exception:
    from ..cli import CLIError  # the one user-facing error type of the command line

    return CLIError(message)


def parse_store(arg: str) -> tuple[str, dict[str, Any]]:
    """``(driver, params)`` from a config file path or a ``driver:key=value,…`` spec."""
    if os.path.isfile(arg):
        try:
            from ..server.config import ConfigError, load_config
        except ImportError as exc:
            raise _cli_error(f"reading {arg} needs the server extra ({exc.name} missing): "
                             "pip install 'layerstore-core[server]'") from None
        try:
            config = load_config(arg, {})
        except ConfigError as exc:
            raise _cli_error(f"{arg}: configuration error: {exc}") from None
        return config.driver, dict(config.driver_params)
    match = _SPEC.match(arg)
    if match is None:
        raise _cli_error(f"{arg!r} is neither a config file nor a driver:key=value,... spec")
    params: dict[str, Any] = {}
    for item in filter(None, match.group("params").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _cli_error(f"{arg!r}: expected key=value, got {item!r}")
        params[key.strip().lower()] = value
    return match.group("driver"), params


def open_store(arg: str) -> StorageDriver:
    name, params = parse_store(arg)
    try:
        return discovery.load_driver(name, **params)
    except (discovery.DriverNotFoundError, discovery.DriverLoadError, ParameterError) as exc:
        raise _cli_error(f"{arg}: {exc}") from None


def parse_rate(text: str | None) -> float | None:
    """Bytes per second from ``50M``, ``1.5GiB``, ``100000`` (0 or None: no limit)."""
    if text is None:
        return None
    match = _SIZE.match(text.strip())
    if match is None:
        raise _cli_error(f"expected a byte rate such as 50M or 1048576, got {text!r}")
    unit = (match.group(2) or "").upper()[:1]
    return float(match.group(1)) * _UNITS[unit] or None


def parse_sample(text: str | None) -> int | float | None:
    """A count (``100``) or a percentage (``5%``) of blobs."""
    if text is None:
        return None
    try:
        if text.endswith("%"):
            fraction = float(text[:-1]) / 100
            if 0 < fraction <= 1:
                return fraction
        elif int(text) > 0:
            return int(text)
    except ValueError:
        pass
    raise _cli_error(f"--sample: expected a count such as 100 or a percentage such as 5%, "
                     f"got {text!r}")


def _setup_logging() -> None:
    from ..cli import command_logging

    command_logging(logging.WARNING)


def cmd_copy(args: argparse.Namespace) -> int:
    _setup_logging()
    source, dest = open_store(args.source), open_store(args.dest)
    options = CopyOptions(jobs=args.jobs, verify=args.verify, dry_run=args.dry_run,
                          rate_limit=parse_rate(args.rate_limit))
    try:
        with terminal_progress(quiet=args.json) as progress:
            report = copy_store(source, dest, options, progress=progress)
    except CopyError as exc:
        raise _cli_error(str(exc)) from None
    except StorageDriverError as exc:  # listing failed: nothing sensible to go on with
        raise _cli_error(f"copy failed: {exc}") from None
    finally:
        source.close()
        dest.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "would copy" if report.dry_run else "copied"
        rate = report.copied_bytes / report.seconds / 2**20 if report.seconds else 0.0
        print(f"{verb} {report.copied_objects} object(s), {report.copied_bytes} bytes "
              f"({rate:.1f} MiB/s); {report.skipped_objects} already there; "
              f"{len(report.failures)} failed; {report.seconds:.1f} s")
        for path, error in report.failures:
            print(f"failed: {path}: {error}", file=sys.stderr)
    return 1 if report.failures else 0


def _verify_target(args: argparse.Namespace) -> StorageDriver:
    if args.store is not None:
        return open_store(args.store)
    from ..cli import _load_config  # serve's config: the file or REGISTRY_CONFIGURATION_PATH

    config = _load_config(args.config)
    try:
        return discovery.load_driver(config.driver, **dict(config.driver_params))
    except (discovery.DriverNotFoundError, discovery.DriverLoadError, ParameterError) as exc:
        raise _cli_error(f"storage.{config.driver}: {exc}") from None


def cmd_verify(args: argparse.Namespace) -> int:
    _setup_logging()
    driver = _verify_target(args)
    source = open_store(args.repair) if args.repair else None
    options = VerifyOptions(repositories=tuple(args.repository) if args.repository else None,
                            sample=parse_sample(args.sample), jobs=args.jobs,
                            rate_limit=parse_rate(args.rate_limit))
    try:
        with terminal_progress(quiet=args.json) as progress:
            report = verify_store(driver, options, progress=progress)
        if source is not None:
            repair(driver, source, report)
    except StorageDriverError as exc:
        raise _cli_error(f"verify failed: {exc}") from None
    finally:
        driver.close()
        if source is not None:
            source.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for problem in report.problems:
            fixed = " (repaired)" if problem in report.repaired else ""
            print(f"{problem.kind}: {problem.path}: {problem.detail}{fixed}")
        counts = ", ".join(f"{n} {k}" for k, n in count_by_kind(report.problems).items())
        print(f"checked {report.blobs_checked} blob(s) ({report.bytes_checked} bytes), "
              f"{report.links_checked} link(s), {report.manifests_checked} manifest(s), "
              f"{report.tags_checked} tag(s); {len(report.problems)} problem(s)"
              f"{' (' + counts + ')' if counts else ''}; {len(report.repaired)} repaired")
    return 1 if report.unrepaired else 0


def register(sub: Any) -> None:
    """Add ``copy`` and ``verify`` to the ``layerstore`` parser's subcommands."""
    store = "a config file or driver:key=value,... spec"
    copy = sub.add_parser("copy", help="copy a registry's storage to another backend",
                          description="Copy blobs, links, manifests and tags (everything but "
                          "uploads in progress); resumable and incremental.")
    copy.add_argument("source", metavar="SRC", help=store)
    copy.add_argument("dest", metavar="DST", help=store)
    copy.add_argument("--jobs", type=int, default=4, help="files copied at once (default 4)")
    copy.add_argument("--verify", action="store_true",
                      help="re-hash blobs DST already has instead of trusting their size")
    copy.add_argument("--dry-run", action="store_true", help="only count what would be copied")
    copy.add_argument("--rate-limit", help="read at most this many bytes/s (e.g. 50M)")
    copy.add_argument("--json", action="store_true", help="print the report as JSON")
    copy.set_defaults(func=cmd_copy)

    verify = sub.add_parser("verify", help="re-hash blobs, check links, manifests and tags",
                            description="Exit status 1 when problems remain (unrepaired).")
    verify.add_argument("store", metavar="STORE", nargs="?",
                        help=f"{store} (default: --config, as for serve)")
    verify.add_argument("--config", help="Distribution-style config.yml (or its env variable)")
    verify.add_argument("--repository", action="append", metavar="NAME",
                        help="check only this repository (repeatable)")
    verify.add_argument("--sample", help="re-hash only N blobs, or P%% of them")
    verify.add_argument("--jobs", type=int, default=4, help="blobs hashed at once (default 4)")
    verify.add_argument("--rate-limit", help="read at most this many bytes/s (e.g. 50M)")
    verify.add_argument("--repair", metavar="FROM",
                        help=f"replace corrupt or missing blobs from this store ({store})")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=cmd_verify)
