"""Typed path specs mapped to driver paths: the Distribution v2 storage layout, exactly.

One frozen dataclass per node of the layout; :func:`path_for` maps each to its driver path and
ends in ``assert_never``, so a spec without a mapping is a mypy error rather than a run-time one.
Names, tags and digests are validated by the caller (see :mod:`.names`) before a spec is built.

::

    /docker/registry/v2                                         ROOT
    ├── blobs/<alg>/<hex[0:2]>/<hex>/                           BlobPath
    │   └── data                                                BlobDataPath (content)
    ├── _gc/                                                    GCPath (ours; Distribution
    │   ├── lease                                               GCLeasePath  ignores it)
    │   ├── sweep                                               GCSweepPath
    │   └── doomed/<run>/<alg>-<hex[0]>                         GCDoomedPath
    └── repositories/                                           RepositoriesPath
        └── <name>/                                             RepositoryPath
            ├── _layers/<alg>/<hex>/link                        LayerLinkPath
            ├── _uploads/                                       UploadsPath
            │   └── <id>/                                       UploadPath
            │       ├── data                                    UploadDataPath
            │       ├── startedat                               UploadStartedAtPath
            │       └── hashstates/<alg>/                       UploadHashStatesPath
            │           └── <offset>                            UploadHashStatePath
            ├── _manifests/
            │   ├── revisions/<alg>/<hex>/link                  ManifestRevisionLinkPath
            │   └── tags/                                       ManifestTagsPath
            │       └── <tag>/                                  ManifestTagPath
            │           ├── current/link                        ManifestTagCurrentPath
            │           └── index/<alg>/<hex>/link              ManifestTagIndexEntryPath
            └── _referrers/<alg>/<subject hex>/                 ReferrersPath (ours)
                └── <alg>/<hex>/link                            ReferrerLinkPath

``_referrers`` is the one addition to Distribution's layout: the OCI 1.1 referrers index, one
``link`` per manifest whose ``subject`` is that digest. Distribution 2.8.2 skips ``_``-directories
it does not know, so it still serves a store that has them.

A ``link`` holds the digest string (``sha256:<hex>``, no newline); ``startedat`` an RFC 3339
UTC time (``2026-11-28T16:04:50Z``, no newline); a hash state 108 bytes (see :mod:`.hashstate`).
"""

from __future__ import annotations

import dataclasses
from typing import assert_never

ROOT = "/docker/registry/v2"


def _split(digest: str) -> tuple[str, str]:
    alg, _, hex_ = digest.partition(":")
    return alg, hex_


@dataclasses.dataclass(frozen=True, slots=True)
class BlobPath:
    """The directory of one content-addressed blob."""

    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class BlobDataPath:
    """The content of one blob (layers, configs and manifests alike)."""

    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class RepositoriesPath:
    """The parent of every repository."""


@dataclasses.dataclass(frozen=True, slots=True)
class RepositoryPath:
    """One repository's directory."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class LayerLinkPath:
    """A blob's visibility in one repository."""

    name: str
    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadsPath:
    """The parent of a repository's uploads in progress."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadPath:
    """One upload's directory; removing it removes every trace of the upload."""

    name: str
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadDataPath:
    """The bytes of an upload, written through the driver's resumable writer."""

    name: str
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadStartedAtPath:
    """When the upload started (RFC 3339 UTC); its presence means the upload exists."""

    name: str
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadCommitPath:
    """The verified digest and length of an upload whose data is being moved into place.

    Written before the move, so a commit retried after a crash that moved the data (and left
    the upload without it) can finish linking without the client re-sending anything.
    """

    name: str
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadHashStatesPath:
    """The directory of an upload's saved hash states for one algorithm."""

    name: str
    id: str
    alg: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadHashStatePath:
    """The hash state after ``offset`` bytes of the upload."""

    name: str
    id: str
    alg: str
    offset: int


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestRevisionLinkPath:
    """A manifest's visibility in one repository."""

    name: str
    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestTagsPath:
    """The parent of a repository's tags."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestTagPath:
    """One tag's directory; removing it untags."""

    name: str
    tag: str


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestTagCurrentPath:
    """The link to the manifest a tag points at now."""

    name: str
    tag: str


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestTagIndexEntryPath:
    """A record that a tag has pointed at a manifest."""

    name: str
    tag: str
    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReferrersPath:
    """The referrers index of one subject digest: a link per manifest naming it as ``subject``."""

    name: str
    subject: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReferrerLinkPath:
    """One entry of a subject's referrers index: the referring manifest's digest."""

    name: str
    subject: str
    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class GCPath:
    """The collector's state: its lease, the sweep marker and the doomed-digest shards."""


@dataclasses.dataclass(frozen=True, slots=True)
class GCLeasePath:
    """The lease that lets one collector at a time run against this storage."""


@dataclasses.dataclass(frozen=True, slots=True)
class GCSweepPath:
    """Present while a collector deletes: its run id and expiry (writers read it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class GCDoomedPath:
    """The digests (one per line) that sweep ``run`` may delete, for one shard."""

    run: str
    shard: str


PathSpec = (
    BlobPath
    | BlobDataPath
    | RepositoriesPath
    | RepositoryPath
    | LayerLinkPath
    | UploadsPath
    | UploadPath
    | UploadDataPath
    | UploadStartedAtPath
    | UploadCommitPath
    | UploadHashStatesPath
    | UploadHashStatePath
    | ManifestRevisionLinkPath
    | ManifestTagsPath
    | ManifestTagPath
    | ManifestTagCurrentPath
    | ManifestTagIndexEntryPath
    | ReferrersPath
    | ReferrerLinkPath
    | GCPath
    | GCLeasePath
    | GCSweepPath
    | GCDoomedPath
)


def path_for(spec: PathSpec) -> str:
    """Return the driver path of ``spec`` in the Distribution v2 layout."""
    repo = f"{ROOT}/repositories"
    match spec:
        case BlobPath(digest):
            alg, hex_ = _split(digest)
            return f"{ROOT}/blobs/{alg}/{hex_[:2]}/{hex_}"
        case BlobDataPath(digest):
            return path_for(BlobPath(digest)) + "/data"
        case RepositoriesPath():
            return repo
        case RepositoryPath(name):
            return f"{repo}/{name}"
        case LayerLinkPath(name, digest):
            alg, hex_ = _split(digest)
            return f"{repo}/{name}/_layers/{alg}/{hex_}/link"
        case UploadsPath(name):
            return f"{repo}/{name}/_uploads"
        case UploadPath(name, id_):
            return f"{repo}/{name}/_uploads/{id_}"
        case UploadDataPath(name, id_):
            return f"{repo}/{name}/_uploads/{id_}/data"
        case UploadStartedAtPath(name, id_):
            return f"{repo}/{name}/_uploads/{id_}/startedat"
        case UploadCommitPath(name, id_):
            return f"{repo}/{name}/_uploads/{id_}/commit"
        case UploadHashStatesPath(name, id_, alg):
            return f"{repo}/{name}/_uploads/{id_}/hashstates/{alg}"
        case UploadHashStatePath(name, id_, alg, offset):
            return f"{repo}/{name}/_uploads/{id_}/hashstates/{alg}/{offset}"
        case ManifestRevisionLinkPath(name, digest):
            alg, hex_ = _split(digest)
            return f"{repo}/{name}/_manifests/revisions/{alg}/{hex_}/link"
        case ManifestTagsPath(name):
            return f"{repo}/{name}/_manifests/tags"
        case ManifestTagPath(name, tag):
            return f"{repo}/{name}/_manifests/tags/{tag}"
        case ManifestTagCurrentPath(name, tag):
            return f"{repo}/{name}/_manifests/tags/{tag}/current/link"
        case ManifestTagIndexEntryPath(name, tag, digest):
            alg, hex_ = _split(digest)
            return f"{repo}/{name}/_manifests/tags/{tag}/index/{alg}/{hex_}/link"
        case ReferrersPath(name, subject):
            alg, hex_ = _split(subject)
            return f"{repo}/{name}/_referrers/{alg}/{hex_}"
        case ReferrerLinkPath(name, subject, digest):
            alg, hex_ = _split(digest)
            return path_for(ReferrersPath(name, subject)) + f"/{alg}/{hex_}/link"
        case GCPath():
            return f"{ROOT}/_gc"
        case GCLeasePath():
            return f"{ROOT}/_gc/lease"
        case GCSweepPath():
            return f"{ROOT}/_gc/sweep"
        case GCDoomedPath(run, shard):
            return f"{ROOT}/_gc/doomed/{run}/{shard}"
        case _:
            assert_never(spec)
