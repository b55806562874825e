"""Test support shipped with the core: the shared conformance suite and the Backend handle.

Driver packages import from here (pytest required); see :mod:`layerstore_core.testing.suite`
for how a driver adopts the suite and :mod:`layerstore_core.testing.backend` for the handle.
"""

import pytest

# The suite's modules use plain asserts; have pytest rewrite them for readable failures. Named one
# by one: this package itself is already imported here, so naming it would only warn.
pytest.register_assert_rewrite(
    *(
        f"{__name__}.{module}"
        for module in (
            "_base", "claimedparts", "concurrency", "content", "listing", "movedelete",
            "reader", "redirect", "resume", "suite", "walk", "writer",
        )
    )
)

from .backend import Backend  # noqa: E402
from .concurrency import ConcurrencyCases  # noqa: E402
from .content import ContentCases  # noqa: E402
from .listing import ListCases  # noqa: E402
from .movedelete import MoveDeleteCases  # noqa: E402
from .reader import ReaderCases  # noqa: E402
from .redirect import RedirectCases  # noqa: E402
from .resume import ResumeCases  # noqa: E402
from .suite import SUITE_PARTS, ConformanceSuite  # noqa: E402
from .walk import WalkCases  # noqa: E402
from .writer import WriterCases  # noqa: E402

__all__ = [  # plain sorted(), checked by tests/test_core_public_api.py
    "Backend",
    "ConcurrencyCases",
    "ConformanceSuite",
    "ContentCases",
    "ListCases",
    "MoveDeleteCases",
    "ReaderCases",
    "RedirectCases",
    "ResumeCases",
    "SUITE_PARTS",
    "WalkCases",
    "WriterCases",
]
