"""Storing one layer in the cache: the tar comes out byte for byte whatever its length against the writer's
pool of buffers, and a small layer costs the memory of a small layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tracemalloc
from pathlib import Path

from exchange_cli.image.blobcache import CHUNK, BlobCache
from exchange_cli.image.digest import Digest
from tests.infra.image_files import base_layer, entry, tar_of

MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
POOL = 6  # the writer's buffers at most (_HashingWriter's depth)


def store(cache: BlobCache, layer: bytes) -> Path:
    blob = gzip.compress(layer, compresslevel=1, mtime=0)
    stored = cache.store_layer(io.BytesIO(blob), image="test", digest=Digest.parse(_sha256(blob)), size=len(blob),
                               media_type=MEDIA_TYPE, diff_id=Digest.parse(_sha256(layer)))
    return stored.tar_path


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_a_layer_longer_than_the_pool_of_buffers_is_stored_byte_for_byte(tmp_path: Path) -> None:
    """More buffers' worth than the pool holds: the reading thread waits for the writer to give them back."""
    layer = tar_of(*(entry(f"data/{n}", os.urandom(CHUNK // 2 + n)) for n in range(2 * POOL + 3)))
    assert len(layer) > (POOL + 1) * CHUNK
    assert store(BlobCache(tmp_path / "cache"), layer).read_bytes() == layer


def test_a_small_layer_makes_one_buffer_not_the_whole_pool(tmp_path: Path) -> None:
    """A 10 KiB layer (many of an image's layers are small) used to allocate the pool's six 1 MiB buffers
    and one more to read what follows the compressed stream: a peak of 7.4 MB, now 1.7 MB."""
    layer = base_layer()
    cache = BlobCache(tmp_path / "cache")
    store(cache, tar_of(entry("warm-up", b"x")))  # the cache's directories and lazy imports, not measured
    tracemalloc.start()
    try:
        stored = store(cache, layer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.read_bytes() == layer
    assert peak < 2 * CHUNK, f"storing a {len(layer)}-byte layer peaked at {peak} bytes"
