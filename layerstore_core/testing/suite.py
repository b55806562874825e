"""The conformance suite: every part, combined; a driver adopts it in one short test module.

.. code-block:: python

    class TestConformanceMyDriver(ConformanceSuite):
        @pytest.fixture
        def conformance_backend(self, backend_mydriver: Backend) -> Backend:
            return backend_mydriver
"""

from __future__ import annotations

from .concurrency import ConcurrencyCases
from .conditional import ConditionalCases
from .content import ContentCases
from .listing import ListCases
from .movedelete import MoveDeleteCases
from .onewriter import OneWriterCases
from .reader import ReaderCases
from .redirect import RedirectCases
from .resume import ResumeCases
from .walk import WalkCases
from .writer import WriterCases


class ConformanceSuite(
    ContentCases,
    ReaderCases,
    WriterCases,
    ResumeCases,
    ListCases,
    MoveDeleteCases,
    WalkCases,
    RedirectCases,
    ConcurrencyCases,
    ConditionalCases,
    OneWriterCases,
):
    """All conformance cases; subclass it and provide the ``conformance_backend`` fixture."""


#: Every part of the suite; CI checks each driver's test class adopts all of them.
SUITE_PARTS: tuple[type, ...] = ConformanceSuite.__bases__
