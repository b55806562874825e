"""Redirect URLs signed by a user delegation key (a token credential, no account key).

Azurite serves HTTPS with bearer tokens (``--oauth basic``: it checks a token's issuer,
audience and lifetime, not its signature) and hands out user delegation keys, whose SAS it
then validates. The driver gets a service client with a token credential, as with
``credential: default`` (``DefaultAzureCredential`` cannot reach an identity here).
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient
from layerstore_azure import AzureDriver, AzureParams

from tests.backends.azure import ACCOUNT, ACCOUNT_KEY, CONTAINER, Azurite


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Token:
    """A token credential: a bearer token for Azure Storage of a made-up tenant and user."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        now = int(time.time())
        tenant = str(uuid.uuid5(uuid.NAMESPACE_URL, "layerstore-test-tenant"))
        claims = {
            "aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, "layerstore-test-user")), "tid": tenant,
        }  # fmt: skip
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        token = f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(b'unchecked')}"
        return AccessToken(token, now + 3600)


@pytest.fixture
def oauth_azurite(tmp_path: Path) -> Iterator[tuple[Azurite, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = Azurite(tmp_path / "loc", ("--oauth", "basic", "--cert", str(cert), "--key", str(key)))
    try:
        assert server.endpoint.startswith("https://")
        shared = AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY)
        with BlobServiceClient(server.endpoint, credential=shared,
                               connection_verify=str(cert)) as service:  # fmt: skip
            service.create_container(CONTAINER)
        yield server, cert
    finally:
        server.stop()


def test_redirect_url_signed_by_a_user_delegation_key(
    oauth_azurite: tuple[Azurite, Path],
) -> None:
    server, cert = oauth_azurite
    service = BlobServiceClient(server.endpoint, credential=_Token(),
                                connection_verify=str(cert))  # fmt: skip
    fetched: list[object] = []
    real_fetch = service.get_user_delegation_key

    def fetch(*args: Any, **kwargs: Any) -> Any:  # counts the service's real requests
        fetched.append(args)
        return real_fetch(*args, **kwargs)

    service.get_user_delegation_key = fetch  # type: ignore[method-assign]
    params = AzureParams(accountname=ACCOUNT, container=CONTAINER, credential="default",
                         endpoint=server.endpoint, rootdirectory="d")  # fmt: skip
    driver = AzureDriver(params, service=service)
    try:
        driver.put_content("/blob", b"delegated")
        first = driver.redirect_url("/blob")
        assert first is not None and "skoid=" in first  # signed by a delegation key
        trust = ssl.create_default_context(cafile=str(cert))
        got = httpx.get(first, verify=trust, timeout=30)
        assert got.status_code == 200 and got.content == b"delegated"
        second = driver.redirect_url("/blob")
        assert second is not None and len(fetched) == 1  # the key is reused, not refetched
        assert httpx.get(second, verify=trust, timeout=30).content == b"delegated"
    finally:
        driver.close()
        service.close()
