"""Manifest, tag-list, referrers and catalog routes."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from ..registry.errors import (
    DigestInvalidError,
    ManifestTooLargeError,
    ManifestUnknownError,
    PaginationNumberInvalidError,
    UnsupportedError,
)
from ..registry.manifests import MAX_MANIFEST_SIZE, OCI_INDEX
from ..registry.names import is_digest_like, split_digest, validate_digest
from ..registry.referrers import MAX_PAGE as MAX_REFERRERS_PAGE
from .http import Request, Response, empty, json_response, parse_decimal
from .state import ServerState

#: Page size for tag lists and the catalog when the client gives no ``n``.
DEFAULT_PAGE = 1000
MAX_PAGE = 10000


def _accepts(req: Request, media_type: str) -> bool:
    """Whether the client's ``Accept`` allows ``media_type`` (no header: anything)."""
    raw = req.headers.get("accept")
    if not raw:
        return True
    types = {part.split(";")[0].strip().lower() for part in raw.split(",")}
    return bool(types & {media_type.lower(), "*/*", "application/*", ""})


async def get(state: ServerState, req: Request, name: str, reference: str) -> Response:
    """GET/HEAD by tag or digest; a type the client's ``Accept`` excludes is MANIFEST_UNKNOWN."""
    repo = state.registry.repository(name)
    if state.proxy is not None and state.proxy.claims(name):
        content, media_type, digest = await state.run(state.proxy.manifest, name, reference)
    else:
        content, media_type, digest = await state.run(repo.manifests.get, reference)
    if not _accepts(req, media_type):
        raise ManifestUnknownError(f"manifest is {media_type}, not in the Accept header",
                                   detail={"mediaType": media_type})
    hdrs = [("Content-Type", media_type), ("Docker-Content-Digest", digest),
            ("ETag", f'"{digest}"'), ("Content-Length", str(len(content)))]
    return Response(200, hdrs, content, head=req.method == "HEAD")


async def _read_manifest(req: Request) -> bytes:
    """The body, refused (413) past Distribution's 4 MiB before reading when announced so."""
    length = req.content_length
    if length is not None and length > MAX_MANIFEST_SIZE:
        raise ManifestTooLargeError(f"manifest larger than {MAX_MANIFEST_SIZE} bytes",
                                    detail={"size": length})
    return await req.read(MAX_MANIFEST_SIZE, ManifestTooLargeError)


async def put(state: ServerState, req: Request, name: str, reference: str) -> Response:
    """PUT a manifest, tagged with the reference (a tag) and each ``?tag=`` (OCI 1.1.1).

    The service sniffs the type when ``Content-Type`` says nothing; a manifest with a
    ``subject`` is answered with ``OCI-Subject``, each tag applied with ``OCI-Tag``.
    """
    repo = state.registry.repository(name)
    algorithm = split_digest(reference)[0] if is_digest_like(reference) else None
    tags = ([] if algorithm is not None else [reference]) + req.query.get("tag", [])
    content = await _read_manifest(req)
    media_type = req.headers.get("content-type")
    if algorithm is not None and (
        f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}" != reference
    ):
        raise DigestInvalidError("manifest content does not match the digest",
                                 detail=reference)
    result = await state.run(repo.manifests.store, content, media_type, tags)
    location = state.config.urls.build(req, f"/v2/{name}/manifests/{result.digest}")
    resp = empty(201, Location=location, Docker_Content_Digest=result.digest)
    if result.subject is not None:
        resp.header("OCI-Subject", result.subject)
    for tag in dict.fromkeys(tags):
        resp.header("OCI-Tag", tag)
    return resp


async def delete(state: ServerState, req: Request, name: str, reference: str) -> Response:
    """DELETE a digest (and the tags naming it) or, as OCI 1.1 allows, just a tag."""
    if not state.config.delete_enabled:
        raise UnsupportedError("deletes are disabled (storage.delete.enabled)")
    repo = state.registry.repository(name)
    if is_digest_like(reference):
        await state.run(repo.manifests.delete, reference)
    else:
        await state.run(repo.tags.untag, reference)
    return empty(202)


def _page_args(req: Request) -> tuple[int, str | None]:
    raw = req.arg("n")
    n = DEFAULT_PAGE
    if raw is not None and raw != "":
        number = parse_decimal(raw)
        if number is None:
            raise PaginationNumberInvalidError(detail={"n": raw[:100]})
        if number > MAX_PAGE:
            raise PaginationNumberInvalidError(f"n may be at most {MAX_PAGE}",
                                               detail={"n": raw[:100]})
        n = number
    return n, req.arg("last") or None


def _paged(state: ServerState, req: Request, path: str, key: str, name: str | None,
           items: list[str], n: int) -> Response:
    page = items[:n]
    doc: dict[str, Any] = {key: page} if name is None else {"name": name, key: page}
    headers = []
    if len(items) > n and page:
        link = state.config.urls.build(req, f"{path}?n={n}&last={quote(page[-1], safe='')}")
        headers.append(("Link", f'<{link}>; rel="next"'))
    return json_response(200, json.dumps(doc).encode("utf-8"), headers)


async def tags(state: ServerState, req: Request, name: str) -> Response:
    """GET tags/list; one extra name is fetched to know whether a ``Link`` is due.

    A name an upstream claims lists the upstream's tags (the cached ones when it fails).
    """
    n, last = _page_args(req)
    repo = state.registry.repository(name)
    if n == 0:
        items: list[str] = []
    elif state.proxy is not None and state.proxy.claims(name):
        items = await state.run(state.proxy.tags, name, n + 1, last)
    else:
        items = list(await state.run(repo.tags.list, n + 1, last))
    return _paged(state, req, f"/v2/{name}/tags/list", "tags", name, items, n)


async def referrers(state: ServerState, req: Request, name: str, subject: str) -> Response:
    """GET referrers/<digest>: an image index of the manifests naming it as ``subject``.

    Always 200 (an empty index for a digest nothing refers to, or that does not exist);
    ``artifactType`` filters and is echoed in ``OCI-Filters-Applied``; ``n``/``last`` page
    through large answers with a ``Link`` header, as the tag list does.
    """
    validate_digest(subject)
    n, last = _page_args(req)
    n = min(n, MAX_REFERRERS_PAGE)
    if last is not None:
        validate_digest(last)
    artifact_type = req.arg("artifactType") or None
    repo = state.registry.repository(name)
    found, more = ([], False) if n == 0 else await state.run(
        repo.manifests.referrers, subject, artifact_type, n, last)
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
    body = json.dumps(doc).encode("utf-8")
    headers = [("Content-Type", OCI_INDEX), ("Content-Length", str(len(body)))]
    if artifact_type is not None:
        headers.append(("OCI-Filters-Applied", "artifactType"))
    if more:
        query = f"n={n}&last={quote(found[-1]['digest'], safe='')}"
        if artifact_type is not None:
            query += f"&artifactType={quote(artifact_type, safe='')}"
        link = state.config.urls.build(req, f"/v2/{name}/referrers/{subject}?{query}")
        headers.append(("Link", f'<{link}>; rel="next"'))
    return Response(200, headers, body)


async def catalog(state: ServerState, req: Request) -> Response:
    """GET _catalog: repositories with manifests, paginated like tags.

    A pull-through cache lists what it holds, as Distribution's proxy does (never the
    upstream's catalog, which Docker Hub does not serve anyway).
    """
    n, last = _page_args(req)
    items = [] if n == 0 else list(await state.run(state.registry.catalog, n + 1, last))
    return _paged(state, req, "/v2/_catalog", "repositories", None, items, n)
