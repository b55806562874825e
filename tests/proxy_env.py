"""The pull-through cache's test world: Distribution 2.8.2 upstreams and layerstore proxies.

Shared by ``tests/test_proxy.py`` and ``bench/proxy.py``. An upstream is Debian's
``docker-registry`` with htpasswd on a filesystem root; its access log (on by default) is what
the tests count upstream requests in. Images are pushed with skopeo.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from tests.backends._servers import free_port
from tests.images import ImageLayout, RegistryProcess, skopeo, write_config

DISTRIBUTION = "/usr/bin/docker-registry"
USER, PASSWORD = "puller", "up-s3cret"


def start_distribution(root: Path, work: Path, name: str, auth: bool = True,
                       extra: Mapping[str, Any] | None = None) -> RegistryProcess:
    """Distribution on ``root`` (htpasswd ``USER:PASSWORD`` unless ``auth`` is off)."""
    assert os.access(DISTRIBUTION, os.X_OK), "apt-get install docker-registry (Distribution)"
    port = free_port()
    doc: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "upstream-secret"},
    }
    if auth:
        htpasswd = work / f"{name}.htpasswd"
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"{USER}:{hashed}\n")
        doc["auth"] = {"htpasswd": {"realm": name, "path": str(htpasswd)}}
    doc.update(extra or {})
    config = work / f"{name}.yml"
    config.write_text(yaml.safe_dump(doc))
    return RegistryProcess([DISTRIBUTION, "serve", str(config)], port,
                           work / f"{name}.log").wait_ready()


def start_proxy(root: Path, work: Path, name: str, proxy: Mapping[str, Any]) -> RegistryProcess:
    """``layerstore serve`` on ``root`` with the ``proxy`` section given."""
    port = free_port()
    config = write_config(work / f"{name}.yml", "filesystem", {"rootdirectory": str(root)},
                          port, {"proxy": dict(proxy), "log": {"level": "info"}})
    return RegistryProcess.layerstore(config, port, work / f"{name}.log").wait_ready()


def push(image: ImageLayout, registry: RegistryProcess, ref: str, policy: Path,
         creds: str | None = f"{USER}:{PASSWORD}") -> None:
    args = ["copy", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    done = skopeo(*args, f"oci:{image.path}:{image.tag}",
                  f"docker://127.0.0.1:{registry.port}/{ref}", policy=policy)
    assert done.returncode == 0, done.stderr


def pull(registry: RegistryProcess, ref: str, dest: Path, policy: Path,
         timeout: float = 600, creds: str | None = None) -> Any:
    """skopeo copy ``ref`` into an OCI layout at ``dest`` (tag ``pulled``)."""
    dest.mkdir(parents=True, exist_ok=True)
    auth = ["--src-creds", creds] if creds else []
    return skopeo("copy", "--src-tls-verify=false", *auth,
                  f"docker://127.0.0.1:{registry.port}/{ref}", f"oci:{dest}:pulled",
                  policy=policy, timeout=timeout)


_ACCESS = re.compile(r'"(GET|HEAD) (/v2/[^ ]+) HTTP/[\d.]+" (\d{3})')


def access_log(registry: RegistryProcess) -> list[tuple[str, str, int]]:
    """``(method, path, status)`` of every request in a Distribution's access log."""
    text = registry.log.read_text(errors="replace")
    return [(m.group(1), m.group(2), int(m.group(3))) for m in _ACCESS.finditer(text)]


def blob_gets(registry: RegistryProcess, digests: Sequence[str] | None = None) -> int:
    """Successful blob GETs the upstream served (of ``digests`` only, when given)."""
    return sum(1 for method, path, status in access_log(registry)
               if method == "GET" and "/blobs/sha256:" in path and status == 200
               and (digests is None or path.rsplit("/", 1)[-1] in digests))
