r"""Resumable SHA-256 whose state is saved in Go's ``encoding.BinaryMarshaler`` format.

Distribution saves the upload's hash state at ``hashstates/sha256/<offset>`` as Go's
``crypto/sha256`` marshals it (108 bytes)::

    "sha\x03" | h[0..7] (8 × uint32 BE) | pending bytes, zero-padded to 64 | length (uint64 BE)

Saving the same bytes lets a resume continue without reading back the upload, in any process,
ours or Distribution's; it is data, not pickle, so storage cannot run code. hashlib cannot export
its state, so the hashing runs in OpenSSL's ``SHA256_CTX`` (the same libcrypto, and the same
assembly, that CPython's ``_hashlib`` uses) through ctypes; ctypes releases the GIL per call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import struct
import sys
from pathlib import Path

MAGIC = b"sha\x03"
BLOCK_SIZE = 64
STATE_SIZE = len(MAGIC) + 8 * 4 + BLOCK_SIZE + 8  # 108
DIGEST_SIZE = 32
#: SHA-256 initial hash values (FIPS 180-4 §5.3.3), the state after zero bytes.
INITIAL_STATE = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip


class HashStateError(ValueError):
    """Bytes that are not a Go-marshalled SHA-256 state."""


class _SHA256Ctx(ctypes.Structure):
    """OpenSSL's ``SHA256_CTX`` (``openssl/sha.h``), stable since 0.9.8."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * BLOCK_SIZE),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


def _loaded_libcrypto() -> str | None:
    """Find the libcrypto that ``_hashlib`` already loaded into this process (Linux), if any."""
    import _hashlib  # noqa: F401 - loads libcrypto, exactly as hashlib links it

    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    for line in maps.read_text().splitlines():
        path = line.split()[-1] if line.split() else ""
        if "libcrypto" in Path(path).name:
            return path
    return None


@functools.cache
def _libcrypto() -> ctypes.CDLL:
    """Bind SHA256_Init/Update/Final from libcrypto, found the way ``_hashlib`` links it."""
    candidates = [_loaded_libcrypto(), ctypes.util.find_library("crypto")]
    if sys.platform == "darwin":
        candidates.append("libcrypto.dylib")
    for name in candidates:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            for fn in ("SHA256_Init", "SHA256_Update", "SHA256_Final"):
                getattr(lib, fn).restype = ctypes.c_int
            lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            lib.SHA256_Init.argtypes = [ctypes.c_void_p]
            lib.SHA256_Final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        return lib
    raise RuntimeError(
        "resumable hashing needs OpenSSL's libcrypto (the library CPython's hashlib links); "
        "none with SHA256_Init was found"
    )


class ResumableSHA256:
    """SHA-256 at OpenSSL speed whose state round-trips through Go's 108-byte format."""

    name = "sha256"

    def __init__(self) -> None:
        self._lib = _libcrypto()
        self._ctx = _SHA256Ctx()
        if self._lib.SHA256_Init(ctypes.byref(self._ctx)) != 1:
            raise RuntimeError("SHA256_Init failed")

    @property
    def length(self) -> int:
        """Bytes hashed so far."""
        return int((self._ctx.Nh << 32) | self._ctx.Nl) >> 3

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash ``data``; bytes and writable buffers are passed without copying."""
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if isinstance(data, bytes):
            pointer: object = ctypes.c_char_p(data)
        elif view.readonly:
            pointer = ctypes.c_char_p(view.tobytes())
        else:
            pointer = (ctypes.c_char * view.nbytes).from_buffer(view)
        if self._lib.SHA256_Update(ctypes.byref(self._ctx), pointer, view.nbytes) != 1:
            raise RuntimeError("SHA256_Update failed")

    def copy(self) -> ResumableSHA256:
        """Return an independent hash with the same state."""
        other = ResumableSHA256()
        ctypes.pointer(other._ctx)[0] = self._ctx
        return other

    def digest(self) -> bytes:
        """Return the digest of everything hashed so far; the state itself is left untouched."""
        out = (ctypes.c_ubyte * DIGEST_SIZE)()
        ctx = _SHA256Ctx.from_buffer_copy(self._ctx)
        if self._lib.SHA256_Final(out, ctypes.byref(ctx)) != 1:
            raise RuntimeError("SHA256_Final failed")
        return bytes(out)

    def hexdigest(self) -> str:
        """Return the digest as lowercase hex."""
        return self.digest().hex()

    def marshal(self) -> bytes:
        """Return the state in Go's ``encoding.BinaryMarshaler`` format (108 bytes)."""
        pending = self.length % BLOCK_SIZE
        buffer = bytes(self._ctx.data)[:pending].ljust(BLOCK_SIZE, b"\0")
        return MAGIC + struct.pack(">8I", *self._ctx.h) + buffer + struct.pack(">Q", self.length)

    @classmethod
    def unmarshal(cls, state: bytes) -> ResumableSHA256:
        """Restore a hash from Go-format ``state``; anything else → HashStateError."""
        if len(state) != STATE_SIZE or not state.startswith(MAGIC):
            raise HashStateError(f"not a Go sha256 state ({len(state)} bytes)")
        words = struct.unpack_from(">8I", state, len(MAGIC))
        buffer = state[len(MAGIC) + 32 : len(MAGIC) + 32 + BLOCK_SIZE]
        (length,) = struct.unpack_from(">Q", state, STATE_SIZE - 8)
        pending = length % BLOCK_SIZE
        if any(buffer[pending:]):
            raise HashStateError("pending block has bytes past the length")
        new = cls()
        ctx = new._ctx
        ctx.h[:] = words
        bits = (length * 8) & 0xFFFFFFFFFFFFFFFF
        ctx.Nl, ctx.Nh = bits & 0xFFFFFFFF, bits >> 32
        ctypes.memmove(ctx.data, buffer, BLOCK_SIZE)
        ctx.num = pending
        ctx.md_len = DIGEST_SIZE
        return new


@functools.cache
def self_test() -> None:
    """Check the ctypes layout against hashlib once: a wrong struct must never hash silently."""
    sample = bytes(range(256)) * 5
    h = ResumableSHA256()
    h.update(sample[:77])
    state = h.marshal()
    if state[:4] != MAGIC or struct.unpack(">Q", state[-8:])[0] != 77:
        raise RuntimeError("libcrypto SHA256_CTX layout is not the expected one")
    resumed = ResumableSHA256.unmarshal(state)
    resumed.update(sample[77:])
    if resumed.digest() != hashlib.sha256(sample).digest():
        raise RuntimeError("libcrypto SHA256_CTX does not round-trip; refusing to hash")


def new_sha256() -> ResumableSHA256:
    """Return a fresh resumable SHA-256, after the one-time layout self test."""
    self_test()
    return ResumableSHA256()
