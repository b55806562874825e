"""``layerstore serve``: the OCI Distribution HTTP API over the blob service (``server`` extra).

Only this package imports the server's third-party dependencies (uvicorn, PyYAML, bcrypt, and
joserfc and cryptography for token auth), so the core stays usable without them. Submodules are
imported on use for the same reason.
"""

from .config import Config, ConfigError, load_config, parse_config

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]
