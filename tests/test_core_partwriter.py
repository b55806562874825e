"""The core part writer on the inmemory bucket: what no one driver's tests pin down."""

import time
from typing import Any

from layerstore_core.drivers.inmemory import PART_SIZE, InMemoryDriver


def test_close_at_a_part_boundary_saves_the_part_in_flight() -> None:
    """With parts uploading in the background, a close whose data ends at a part boundary
    sends that part in the background too; the state it saves must list it (on main it was
    saved before the part landed, and the resume came up a whole part short)."""
    driver = InMemoryDriver()
    bucket = driver.bucket
    bucket.max_concurrency = 4
    real = bucket.upload_part

    def late(*args: Any, **kwargs: Any) -> Any:  # the real upload, after the caller moved on
        time.sleep(0.3)
        return real(*args, **kwargs)

    bucket.upload_part = late  # type: ignore[method-assign]
    with driver.writer("/x") as w:
        w.write(b"a" * PART_SIZE + b"b")
    with driver.writer("/x", append=True) as w:
        w.write(b"c" * (PART_SIZE - 1))  # the buffer is full when close() comes
    w = driver.writer("/x", append=True)
    assert w.size == 2 * PART_SIZE
    w.commit()
    assert driver.get_content("/x") == b"a" * PART_SIZE + b"b" + b"c" * (PART_SIZE - 1)
