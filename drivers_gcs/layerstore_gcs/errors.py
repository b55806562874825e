"""Translation of Google Cloud Storage failures into layerstore's error tree, in one place.

``_BY_STATUS`` maps an HTTP status to our class; on a resumable-upload session URI a 404 or 410
means the session is gone (GCS keeps sessions a week), hence ``_SESSION_BY_STATUS``. Every SDK
call and raw session request runs inside :func:`gcs_errors`, which raises ``translate(...) from``
the original. Retries are not done here: they belong to the SDK's retry settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc

from layerstore_core.errors import InvalidOffsetError, PathNotFoundError, StorageDriverError


class UploadSessionExpiredError(StorageDriverError):
    """The resumable upload session is gone (GCS expires them after a week); upload again."""


_BY_STATUS: dict[int, type[StorageDriverError]] = {
    404: PathNotFoundError,
    416: InvalidOffsetError,
}
_SESSION_BY_STATUS: dict[int, type[StorageDriverError]] = {
    **_BY_STATUS,
    404: UploadSessionExpiredError,
    410: UploadSessionExpiredError,
}


def translate(exc: BaseException, path: str | None, *, session: bool = False) -> StorageDriverError:
    """Our error for ``exc``: by HTTP status where there is one, else a StorageDriverError."""
    if isinstance(exc, StorageDriverError):
        return exc
    code = getattr(exc, "code", None)
    if isinstance(exc, gexc.GoogleAPICallError) and isinstance(code, int):
        table = _SESSION_BY_STATUS if session else _BY_STATUS
        cls = table.get(code, StorageDriverError)
        return cls(f"HTTP {code}: {exc.message}", path=path)
    return StorageDriverError(f"{type(exc).__name__}: {exc}", path=path)


def raise_for_response(response: requests.Response) -> None:
    """Raise the SDK's exception for a failed raw HTTP response (so it goes through translate)."""
    if response.status_code >= 400:
        raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]  # untyped SDK


@contextmanager
def gcs_errors(path: str | None, *, session: bool = False) -> Iterator[None]:
    """Run a block of GCS calls, raising any failure as one of our errors."""
    try:
        yield
    except StorageDriverError:
        raise
    except (
        gexc.GoogleAPIError,
        google.auth.exceptions.GoogleAuthError,
        requests.RequestException,
        ValueError,
        ConnectionError,
    ) as exc:
        raise translate(exc, path, session=session) from exc
