"""``http.tls.clientcas``, ``minimumtls`` and ``ciphersuites``: Distribution's TLS policy.

Distribution names cipher suites as Go does (the IANA names); OpenSSL wants its own, so the
TLS 1.2 suites Go offers are mapped here. TLS 1.3 suites are not configurable (in Go either).
With ``clientcas`` a client must present a certificate signed by one of them (mutual TLS).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1, "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3,
}
DEFAULT_MINIMUM = "tls1.2"
#: Go's (IANA) TLS 1.2 suite names → OpenSSL's.
CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_AES_128_GCM_SHA256": "", "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",  # TLS 1.3: always on
}


def openssl_ciphers(names: Sequence[str]) -> str:
    """The OpenSSL cipher string for Go suite names (unknown names: ValueError)."""
    unknown = [n for n in names if n not in CIPHERS]
    if unknown:
        raise ValueError(f"unknown cipher suite(s) {unknown} (known: {sorted(CIPHERS)})")
    return ":".join(CIPHERS[n] for n in names if CIPHERS[n])


def apply(context: ssl.SSLContext, minimum: str, ciphers: Sequence[str],
          clientcas: Sequence[str]) -> None:
    """Set the minimum version, the TLS 1.2 suites and the client CAs on a server context."""
    context.minimum_version = VERSIONS[minimum]
    if ciphers and (suites := openssl_ciphers(ciphers)):
        context.set_ciphers(suites)
    for path in clientcas:
        context.load_verify_locations(cafile=path)
    if clientcas:
        context.verify_mode = ssl.CERT_REQUIRED
