"""The ``azure`` backend: Azurite (npm, pinned in tests/azurite) started once per session.

Azurite runs as ``node .../azurite/dist/src/blob/main.js`` (node directly: stopping an ``npx``
wrapper orphans the server) on 127.0.0.1 with port 0; the real port is read from its
``successfully listens on`` log line. It is stopped with SIGTERM by PID (SIGKILL can lose the
last metadata writes). Each test gets its own ``rootdirectory`` in one shared container.
"""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from layerstore_core.testing import Backend

from ._servers import stop

BACKENDS = ["azure"]

AZURITE_DIR = Path(__file__).resolve().parents[1] / "azurite"
AZURITE_MAIN = AZURITE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
#: Azurite's well-known development account (published in Azurite's README).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
CONTAINER = "layerstore-test"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_LISTENING = re.compile(r"successfully listens on (https?://\S+)")


class Azurite:
    """One Azurite blob server process on a ``--location`` directory.

    ``extra`` are more command-line options (``--oauth basic --cert ... --key ...``: HTTPS with
    bearer tokens, which user delegation keys need).
    """

    def __init__(self, location: Path, extra: tuple[str, ...] = ()) -> None:
        if not AZURITE_MAIN.is_file():
            raise RuntimeError(
                f"Azurite is not installed ({AZURITE_MAIN} is missing): "
                "run `npm ci --prefix tests/azurite`"
            )
        location.mkdir(parents=True, exist_ok=True)
        self.location = location
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Azurite needs Node.js: `node` is not on PATH (apt install nodejs)")
        self.process = subprocess.Popen(
            [
                node, str(AZURITE_MAIN),
                "--blobHost", "127.0.0.1", "--blobPort", "0",
                "--location", str(location),
                "--silent", "--skipApiVersionCheck", "--disableTelemetry", *extra,
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        """Read the log until the listening line; keep draining it so Azurite never blocks."""
        found: queue.Queue[str | None] = queue.Queue()
        log: list[str] = []

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                log.append(line)
                match = _LISTENING.search(line)
                if match:
                    found.put(match.group(1))
            found.put(None)

        threading.Thread(target=pump, daemon=True, name="azurite-log").start()
        try:
            url = found.get(timeout=START_TIMEOUT)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise RuntimeError(f"Azurite did not start; its output:\n{''.join(log)[-2000:]}")
        return url

    @property
    def endpoint(self) -> str:
        return f"{self.url}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def params(self, **extra: Any) -> dict[str, Any]:
        """Driver parameters (Distribution's keys plus ``endpoint``) for this server."""
        return {
            "accountname": ACCOUNT,
            "accountkey": ACCOUNT_KEY,
            "endpoint": self.endpoint,
            "container": CONTAINER,
            **extra,
        }

    def create_container(self, name: str = CONTAINER) -> None:
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(self.connection_string) as service:
            service.create_container(name)

    def stop(self) -> None:
        """SIGTERM by PID, then wait; Azurite flushes its metadata on SIGTERM."""
        stop(self.process, timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with tempfile.TemporaryDirectory(prefix="azurite-") as tmp:
        server = Azurite(Path(tmp))
        try:
            server.create_container()
            yield server
        finally:
            server.stop()


def raw_leftovers(azurite: Azurite, prefix: str) -> list[str]:
    """Every blob under ``prefix`` as Azure sees it, blobs with only staged blocks included."""
    from azure.storage.blob import ContainerClient

    with ContainerClient.from_connection_string(azurite.connection_string, CONTAINER) as c:
        blobs = c.list_blobs(name_starts_with=prefix, include=["uncommittedblobs"])
        return sorted(b.name for b in blobs)


@pytest.fixture
def backend_azure(azurite: Azurite) -> Backend:
    root = f"t-{uuid.uuid4().hex[:12]}"
    params = azurite.params(rootdirectory=root, chunksize=256 * 1024)
    return Backend(
        "azure", "azure", params, leftovers=lambda: raw_leftovers(azurite, root + "/")
    )
