"""Translation of Google Cloud Storage errors into layerstore's error tree, in one place.

Every SDK call and resumable-session request runs inside :func:`translated`, which looks the HTTP
status up in :data:`ERROR_TABLE` (GCS errors carry no finer code the SDK exposes) and raises
:func:`translate`'s error ``from`` the original; statuses missing from the table become a plain
:class:`StorageDriverError`. On a resumable-upload session URI a 404 or 410 means the session is
gone (GCS keeps sessions a week): :data:`SESSION_ERROR_TABLE` is the table as seen there. Retries
are the SDK's retry objects (see ``bucket.py``, ``session.py``); no message text is matched.
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


#: HTTP status → our error class.
ERROR_TABLE: dict[int, type[StorageDriverError]] = {
    404: PathNotFoundError,
    416: InvalidOffsetError,
}
#: The same, for requests on an upload session URI.
SESSION_ERROR_TABLE: dict[int, type[StorageDriverError]] = {
    **ERROR_TABLE,
    404: UploadSessionExpiredError,
    410: UploadSessionExpiredError,
}


def translate(
    exc: BaseException, path: str | None = None, *, session: bool = False
) -> StorageDriverError:
    """Our error for ``exc``: by HTTP status where there is one, else a StorageDriverError."""
    if isinstance(exc, StorageDriverError):
        return exc
    code = getattr(exc, "code", None)
    if isinstance(exc, gexc.GoogleAPICallError) and isinstance(code, int):
        table = SESSION_ERROR_TABLE if session else ERROR_TABLE
        cls = table.get(code, StorageDriverError)
        return cls(f"HTTP {code}: {exc.message}", path=path)
    return StorageDriverError(f"{type(exc).__name__}: {exc}", path=path)


@contextmanager
def translated(path: str | None = None, *, session: bool = False) -> Iterator[None]:
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
