"""Pull-through cache: mirror upstream registries by namespace prefix (Distribution's ``proxy``).

``config`` parses the section, ``upstream`` is the HTTP client (token flow, basic auth,
Retry-After), ``cache`` keeps the freshness records and leases in storage, ``blobs`` does the
single-flight fetch, ``service`` ties them to the server's manifest and blob routes, ``expiry``
drops cached content past its ttl.
"""

from .config import ProxyConfig, Upstream
from .service import Proxy
from .stats import ProxyStats

__all__ = ["Proxy", "ProxyConfig", "ProxyStats", "Upstream"]
