"""The pytest plugin (entry point ``pytest11``): command-line options of the conformance suite."""

from __future__ import annotations

import pytest

from ._base import DEFAULT_LARGE_STREAM_MIB


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("layerstore", "layerstore conformance suite")
    group.addoption(
        "--large-stream-mib",
        dest="large_stream_mib",
        type=int,
        default=DEFAULT_LARGE_STREAM_MIB,
        help=f"size of the large-stream case in MiB (default {DEFAULT_LARGE_STREAM_MIB})",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too: driver packages run the suite under --strict-markers with no setup.
    config.addinivalue_line("markers", "slow: large-stream cases (still run in CI)")
