"""A cold export indexes each layer while the layers above it still download, with the same bytes and
the same errors as indexing them all at the end; the output's write-back overlaps its writing."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from exchange_cli.errors import OutputError
from exchange_cli.export import ExportError, ExportOptions, _OutputFile, export_rootfs
from exchange_cli.image.blobcache import BlobCache, BlobError
from exchange_cli.image.model import LayerBlob
from exchange_cli.rootfs.index import BackgroundIndex
from exchange_cli.rootfs.tarball import write_rootfs
from tests.infra.registry import Fault, sha256_digest
from tests.layers import directory, file, make_layer, whiteout


def layer_blob(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif name.rsplit("/", 1)[-1].startswith(".wh."):
                info.size = 0
            else:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def mapped_files() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split(maxsplit=5)[5].strip() for line in maps if len(line.split(maxsplit=5)) == 6}


def wait_until(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def export_in_thread(reference: str, output: Path, options: ExportOptions) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = export_rootfs(reference, output, options=options)
        except BaseException as error:  # noqa: BLE001 - inspected by the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_lower_layers_are_indexed_while_an_upper_layer_downloads(registry, registry_proxy, tmp_path):
    blobs = [layer_blob({"etc/": b"", "etc/a": b"a" * 3000, "etc/gone": b"old"}),
             layer_blob({"usr/": b"", "usr/b": b"b" * 70000}),
             layer_blob({"etc/": b"", "etc/.wh.gone": b"", "etc/c": b"top"})]
    registry.push_image("overlap/held", "v1", blobs)
    held = threading.Event()
    registry_proxy.faults.append(Fault(f"/blobs/{sha256_digest(blobs[2])}", times=1, hold=held))
    cache = BlobCache(tmp_path / "cache")
    options = ExportOptions(cache=cache, source="registry", insecure_registries=(registry_proxy.host,))
    lower_tars = [str(cache.layer_path("sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()))
                  for blob in blobs[:2]]

    thread, outcome = export_in_thread(f"{registry_proxy.host}/overlap/held:v1", tmp_path / "out.tgz", options)
    try:
        # Pass 1 maps each layer it reads: the two lower ones are, while the top one is still held back.
        assert wait_until(lambda: set(lower_tars) <= mapped_files()), "the lower layers were not indexed early"
        assert thread.is_alive() and not (tmp_path / "out.tgz").exists()
    finally:
        held.set()
        thread.join(60)
    result = outcome["result"]

    layers = result.image.layers
    expected = write_rootfs(layers, io.BytesIO())  # every layer indexed at the end, as before
    assert result.sha384 == expected.sha384 and result.entries == expected.entries
    assert hashlib.sha384((tmp_path / "out.tgz").read_bytes()).hexdigest() == expected.sha384
    assert not set(lower_tars) & mapped_files(), "the layers stay mapped after the export"


def test_a_download_failure_above_a_bad_layer_is_still_the_error_reported(registry, registry_proxy, tmp_path):
    """Indexing every layer at the end met the failed download first; indexing early must not change that."""
    bad_below = layer_blob({"../escape": b"x"})
    above = layer_blob({"fine": b"y" * 100})
    registry.push_image("overlap/both-bad", "v1", [bad_below, above])
    held = threading.Event()
    corrupt = bytes(b ^ 0xFF for b in above)
    registry_proxy.faults.append(Fault(f"/blobs/{sha256_digest(above)}", times=1, hold=held, body=corrupt))
    registry_proxy.faults.append(Fault(f"/blobs/{sha256_digest(above)}", times=100, body=corrupt))
    cache = BlobCache(tmp_path / "cache")
    options = ExportOptions(cache=cache, source="registry", insecure_registries=(registry_proxy.host,))
    bad_tar = str(cache.layer_path("sha256:" + hashlib.sha256(gzip.decompress(bad_below)).hexdigest()))

    thread, outcome = export_in_thread(f"{registry_proxy.host}/overlap/both-bad:v1", tmp_path / "out.tgz", options)
    try:
        # Give the bad layer's pass 1 time to fail before the download above it does.
        if wait_until(lambda: bad_tar in mapped_files(), seconds=5):
            time.sleep(0.2)
    finally:
        held.set()
        thread.join(60)

    error = outcome["error"]
    assert isinstance(error, BlobError) and error.digest == sha256_digest(above), error
    assert not (tmp_path / "out.tgz").exists()


def test_a_bad_layer_fails_the_export_as_it_did_when_indexed_at_the_end(registry, tmp_path):
    registry.push_image("overlap/bad", "v1", [layer_blob({"ok": b"1"}), layer_blob({"../escape": b"x"}),
                                              layer_blob({"later": b"2"})])
    options = ExportOptions(cache=BlobCache(tmp_path / "cache"), source="registry",
                            insecure_registries=(registry.host,))

    with pytest.raises(ExportError) as failure:
        export_rootfs(f"{registry.host}/overlap/bad:v1", tmp_path / "out.tgz", options=options)

    assert "../escape" in str(failure.value) and f"{registry.host}/overlap/bad:v1" in str(failure.value)
    assert not (tmp_path / "out.tgz").exists()
    assert list(tmp_path.glob(".out.tgz*")) == []


def test_layers_reported_in_any_order_or_not_at_all_give_the_same_bytes(tmp_path):
    layers: list[LayerBlob] = [
        make_layer(tmp_path, [directory("d"), file("d/one", b"1"), file("d/two", b"2")]),
        make_layer(tmp_path, [directory("d"), whiteout("d/one"), file("d/three", b"3")]),
        make_layer(tmp_path, [file("top", b"t")]),
        make_layer(tmp_path, [directory("d"), whiteout("d/three")]),
    ]
    expected = write_rootfs(layers, io.BytesIO())
    for reported in ([3, 2, 1, 0], [1, 0], [2], []):
        with BackgroundIndex() as index:
            for position in reported:
                index.stored(position, layers[position])
            assert write_rootfs(layers, io.BytesIO(), index=index) == expected


def test_a_failed_write_back_is_reported_even_though_the_final_fsync_could_miss_it(tmp_path):
    read_end, write_end = os.pipe()  # fdatasync on a pipe fails (EINVAL), as a disk error would
    drain = threading.Thread(target=lambda: [None for _ in iter(lambda: os.read(read_end, 1 << 20), b"")],
                             daemon=True)
    drain.start()
    with open(write_end, "wb", buffering=0) as handle:
        out = _OutputFile(handle, tmp_path / "out.tgz")
        out.write(bytes(40 << 20))  # past one write-back step
        out.wait()
        with pytest.raises(OutputError, match="out.tgz"):
            out.raise_failure()
    drain.join(10)
    os.close(read_end)
