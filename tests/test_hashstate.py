"""The resumable SHA-256 state: Go's 108-byte BinaryMarshaler format, checked independently."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest

from layerstore_core.registry.hashstate import (
    INITIAL_STATE,
    HashStateError,
    ResumableSHA256,
    new_sha256,
)

_K = [
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
]  # fmt: skip


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def _compress(h: list[int], block: bytes) -> list[int]:
    """FIPS 180-4 SHA-256 compression, written out so the test does not trust libcrypto."""
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, hh = h
    for i in range(64):
        t1 = hh + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        a, b, c, d, e, f, g, hh = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return [(x + y) & 0xFFFFFFFF for x, y in zip(h, [a, b, c, d, e, f, g, hh], strict=True)]


def go_state(data: bytes) -> bytes:
    """What Go's crypto/sha256 MarshalBinary returns after hashing ``data``."""
    h = list(INITIAL_STATE)
    full = len(data) - len(data) % 64
    for i in range(0, full, 64):
        h = _compress(h, data[i : i + 64])
    pending = data[full:].ljust(64, b"\0")
    return b"sha\x03" + struct.pack(">8I", *h) + pending + struct.pack(">Q", len(data))


def test_state_after_zero_bytes() -> None:
    state = new_sha256().marshal()
    assert len(state) == 108
    assert state[:4] == b"sha\x03"
    assert state[4:36] == bytes.fromhex(
        "6a09e667bb67ae853c6ef372a54ff53a510e527f9b05688c1f83d9ab5be0cd19"
    )
    assert state[36:] == bytes(72)


@pytest.mark.parametrize("length", [1, 55, 63, 64, 65, 128, 1000, 4097])
def test_marshal_matches_go_format(length: int) -> None:
    data = random.Random(length).randbytes(length)
    h = new_sha256()
    h.update(data)
    assert h.marshal() == go_state(data)


def test_state_after_1000_bytes_restores_to_hashlib_digest() -> None:
    data = random.Random(1000).randbytes(1000)
    restored = ResumableSHA256.unmarshal(go_state(data))
    assert restored.length == 1000
    assert restored.digest() == hashlib.sha256(data).digest()
    more = random.Random(1).randbytes(333)
    restored.update(more)
    assert restored.hexdigest() == hashlib.sha256(data + more).hexdigest()


def test_round_trip_at_every_boundary_kind() -> None:
    data = random.Random(9).randbytes(300_000)
    for cut in (0, 1, 64, 191, 200_000):
        h = new_sha256()
        h.update(data[:cut])
        resumed = ResumableSHA256.unmarshal(h.marshal())
        resumed.update(memoryview(data)[cut:])
        assert resumed.digest() == hashlib.sha256(data).digest()


def test_buffer_kinds_and_digest_leaves_state() -> None:
    h = new_sha256()
    h.update(b"ab")
    h.update(bytearray(b"cd"))
    h.update(memoryview(b"xxefxx")[2:4])
    h.update(memoryview(bytearray(b"gh")))
    assert h.digest() == hashlib.sha256(b"abcdefgh").digest()
    copy = h.copy()
    h.update(b"i")
    assert copy.digest() == hashlib.sha256(b"abcdefgh").digest()
    assert h.digest() == hashlib.sha256(b"abcdefghi").digest()


@pytest.mark.parametrize(
    "state",
    [
        b"",
        b"sha\x03" + bytes(100),
        b"sha\x02" + bytes(104),
        b"sha\x03" + bytes(32) + b"\x01" * 64 + struct.pack(">Q", 3),
        b"\x80\x04\x95" + bytes(105),
    ],
)
def test_rejects_what_is_not_a_go_state(state: bytes) -> None:
    with pytest.raises(HashStateError):
        ResumableSHA256.unmarshal(state)
