"""The drivers shipped in the core: ``filesystem`` (the embedded default) and ``inmemory``."""
