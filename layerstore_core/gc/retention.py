"""Retention policies: which tags to delete before marking (``storage.maintenance.retention``).

A policy applies to repositories whose name matches its glob (``repositories``). Within them a
tag is kept when it is one of the ``keeplatest`` most recently pushed tags (by the time of its
``current`` link) or matches the ``keeptags`` regular expression; any other tag is deleted if
it is older than ``deleteolderthan`` (or at once when no age is given but ``keeplatest`` is).
The first policy whose pattern matches a repository decides for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .scan import RepoScan


class RetentionError(ValueError):
    """A retention policy is malformed; the message names the key."""


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """Keep the newest ``keep_latest`` tags and those matching ``keep_tags``; age out the rest."""

    repositories: str = "*"
    keep_latest: int | None = None
    keep_tags: re.Pattern[str] | None = None
    delete_older_than: dt.timedelta | None = None

    def applies_to(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.repositories)

    def doomed_tags(self, repo: RepoScan, now: dt.datetime) -> list[str]:
        """Tags of ``repo`` this policy deletes."""
        if self.keep_latest is None and self.delete_older_than is None:
            return []
        newest_first = sorted(repo.tag_times, key=lambda t: (repo.tag_times[t], t), reverse=True)
        kept = set(newest_first[: self.keep_latest]) if self.keep_latest is not None else set()
        doomed = []
        for tag in newest_first:
            if tag in kept or (self.keep_tags is not None and self.keep_tags.fullmatch(tag)):
                continue
            age = now - repo.tag_times[tag]
            if self.delete_older_than is None or age > self.delete_older_than:
                doomed.append(tag)
        return sorted(doomed)


def tags_to_delete(
    policies: Sequence[RetentionPolicy], repos: Iterable[RepoScan], now: dt.datetime
) -> dict[str, list[str]]:
    """Repository → tags the first matching policy deletes (repositories with none left out)."""
    out: dict[str, list[str]] = {}
    for repo in repos:
        policy = next((pol for pol in policies if pol.applies_to(repo.name)), None)
        if policy is not None and (doomed := policy.doomed_tags(repo, now)):
            out[repo.name] = doomed
    return out


_KEYS = {"repositories", "keeplatest", "keeptags", "deleteolderthan"}
#: Parses a Go duration string into seconds (the config module's ``parse_duration``).
DurationParser = Callable[[Any, str], float]


def parse_policies(
    raw: Any, parse_duration: DurationParser, key: str = "storage.maintenance.retention"
) -> tuple[RetentionPolicy, ...]:
    """Policies from config: a list of mappings with the keys in :data:`_KEYS`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RetentionError(f"{key}: expected a list of policies, got {raw!r}")
    return tuple(_policy(item, parse_duration, f"{key}[{i}]") for i, item in enumerate(raw))


def _policy(item: Any, parse_duration: DurationParser, key: str) -> RetentionPolicy:
    if not isinstance(item, Mapping):
        raise RetentionError(f"{key}: expected a mapping, got {item!r}")
    sec = {str(k).lower(): v for k, v in item.items()}
    unknown = set(sec) - _KEYS
    if unknown:
        raise RetentionError(f"{key}.{sorted(unknown)[0]}: unknown key (known: {sorted(_KEYS)})")
    keep_latest = sec.get("keeplatest")
    if keep_latest is not None:
        if isinstance(keep_latest, bool) or not str(keep_latest).isdigit():
            raise RetentionError(f"{key}.keeplatest: expected a count, got {keep_latest!r}")
        keep_latest = int(keep_latest)
    keep_tags = None
    if sec.get("keeptags") is not None:
        try:
            keep_tags = re.compile(str(sec["keeptags"]))
        except re.error as exc:
            raise RetentionError(f"{key}.keeptags: not a regular expression: {exc}") from None
    age = None
    if sec.get("deleteolderthan") is not None:
        age = dt.timedelta(seconds=parse_duration(sec["deleteolderthan"], f"{key}.deleteolderthan"))
    return RetentionPolicy(str(sec.get("repositories", "*")), keep_latest, keep_tags, age)
