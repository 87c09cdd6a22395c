"""Export an image's flattened root filesystem to a deterministic gzip tarball.

The output appears whole or not at all: the tarball is written to a hidden temporary file next to
the output, fsynced, and renamed over the output only once everything has been verified. Anything
that goes wrong, an interrupt included, removes the temporary file. No printing here: `exchange
export` and `exchange process` render the result themselves.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .durable import fsync_directory, new_file_mode
from .errors import ExchangeError, writing
from .image.model import Image
from .image.resolve import ExportOptions as ExportOptions  # defined there, still importable from here
from .image.resolve import open_image
from .progress import NullProgress, Progress
from .quoting import printable
from .rootfs.errors import LayerError
from .rootfs.index import BackgroundIndex, LayerIndex
from .rootfs.squashfs import TAR2SQFS, SquashfsSink, Tar2sqfs, image_digest, write_squashfs
from .rootfs.tarball import write_rootfs
from .sbom.renderer import DocumentMaker, DocumentProcess, RendererFailed, document_maker
from .testgates import gate

# How much of the output may wait for the disk when the final fsync comes; see _OutputFile.
WRITE_BACK_STEP = 32 << 20


class ExportError(ExchangeError):
    """A layer of the image cannot be turned into a safe rootfs; names the image, the layer and the entry."""


@dataclass(frozen=True)
class WrittenFile:
    output: Path
    sha384: str  # hex digest of the file's bytes
    size: int


@dataclass(frozen=True)
class SquashfsImage(WrittenFile):
    tool: str  # "tar2sqfs (squashfs-tools-ng) VERSION": what made the bytes, with `settings`
    settings: str


@dataclass(frozen=True)
class SquashfsRequest:
    """Write the squashfs image to `output` too, with `tool` (see exchange_cli.rootfs.squashfs.find_tar2sqfs)."""
    output: Path
    tool: Tar2sqfs


@dataclass(frozen=True)
class ExportResult:
    tarball: WrittenFile | None  # None when only the squashfs image was asked for
    entries: int
    image: Image
    # The CycloneDX SBOM of the rootfs, collected as it was written; None unless asked for.
    sbom: bytes | None = None
    squashfs: SquashfsImage | None = None

    @property
    def sha384(self) -> str:
        """The tarball's hex sha384 (the published artifact's identity)."""
        return self._tarball.sha384

    @property
    def size(self) -> int:
        return self._tarball.size

    @property
    def output(self) -> Path:
        return self._tarball.output

    @property
    def _tarball(self) -> WrittenFile:
        assert self.tarball is not None, "the export was asked for the squashfs image only"
        return self.tarball

    @property
    def image_digest(self) -> str:
        """What pins the source image: its pinned reference when it has one, else its config digest."""
        return self.image.pinned_reference or self.image.manifest_digest or self.image.config_digest


def export_rootfs(image: str, output: Path | None, *, options: ExportOptions = ExportOptions(),
                  progress: Progress = NullProgress(), sbom: bool = False, sbom_child: DocumentProcess | None = None,
                  squashfs: SquashfsRequest | None = None) -> ExportResult:
    """Resolve `image` and write its flattened rootfs to `output` (see export_image); then trim the cache.

    Each layer is indexed (pass 1 of the flattener) as soon as it and those below it are stored,
    while the layers above it are still being fetched."""
    gate("open")  # tests: held before the image is opened (an SBOM's process started early is running)
    with BackgroundIndex() as index:
        with progress.row(image, "fetch", done="fetched") as row:
            resolved = open_image(image, platform=options.platform, source=options.source,
                                  insecure_registries=options.insecure_registries, oci_layout=options.oci_layout,
                                  cache=options.cache, progress=row, layer_stored=index.stored)
        with progress.row(image, "write", done="written") as row:
            result = export_image(resolved, output, progress=row, shown_as=image, index=index, sbom=sbom,
                                  sbom_child=sbom_child, squashfs=squashfs)
    options.cache.evict(keep={layer.diff_id for layer in resolved.layers})
    return result


def export_image(image: Image, output: Path | None, *, progress: Progress = NullProgress(),
                 shown_as: str | None = None, index: LayerIndex | None = None, sbom: bool = False,
                 sbom_child: DocumentProcess | None = None, squashfs: SquashfsRequest | None = None) -> ExportResult:
    """Write a resolved image's flattened rootfs to `output` as deterministic gzip; leaves nothing behind on failure.

    Takes the `Image` a caller already resolved (`exchange process` checks it first), so its layers
    are fetched and verified once. `shown_as` names the image in errors; `index` may hold pass 1 of
    its first layers already (the caller closes it). Trimming the cache is the caller's: it knows which images come next.
    `sbom`: collect the SBOM from the same pass over the layers (see exchange_cli.sbom); it names the tarball.
    `sbom_child`: the document's process, started early by the caller (renderer.child_started_early).
    `squashfs`: also write the squashfs image, from the same tar stream in the same pass; `output`
    may then be None for the image alone. A failure before the files are complete leaves neither.
    """
    if output is None and (squashfs is None or sbom):
        raise ValueError("export_image: the tarball is needed for an export without squashfs, and for the SBOM")
    try:
        with document_maker(_tar_bytes(image), sbom_child) if sbom else nullcontext() as renderer:
            return _write(image, output, progress, index, renderer, squashfs, shown_as)
    except RendererFailed as error:
        raise ExportError(f"{shown_as or image.reference}: the SBOM could not be made: {printable(str(error))}") \
            from error


def _write(image: Image, output: Path | None, progress: Progress, index: LayerIndex | None,
           renderer: DocumentMaker | None, squashfs: SquashfsRequest | None,
           shown_as: str | None) -> ExportResult:
    """The files of export_image, complete or none; the renderer told of the SBOM's findings on the way, and
    its document taken before the files are in place, so that an SBOM that fails leaves no tarball."""
    watch = renderer.watch() if renderer is not None else None
    documents: list[bytes] = []
    if renderer is not None:
        gate("sbom")  # tests: held with the SBOM's process started, before the layers are read
    try:
        with ExitStack() as stack:
            squashfs_path = stack.enter_context(_atomic_path(squashfs.output)) if squashfs is not None else None
            sink = SquashfsSink(squashfs.tool, str(squashfs_path)) if squashfs is not None else None
            if sink is not None:
                stack.callback(sink.abandon)  # when anything fails before write_rootfs has it (then a no-op)
                gate("squashfs")  # tests: held with tar2sqfs running, its image begun, nothing fed to it yet
            # The flattener sets the total once it knows the files' data bytes, and advances by exactly those.
            shown = output if output is not None else squashfs.output  # type: ignore[union-attr]
            task = stack.enter_context(progress.task(f"Writing {shown.name}"))
            if output is None:
                assert sink is not None
                entries, tarball = write_squashfs(image.layers, sink, progress_task=task, index=index), None
            else:
                # The document is taken once the tarball is on disk and before it is renamed into place:
                # the renderer's last components (the dpkg status comes last, under var/) are made while
                # the disk takes the tarball's end, and an SBOM that fails still leaves no tarball.
                take_document = (lambda: documents.append(renderer.document())) if renderer is not None else None
                handle = stack.enter_context(_atomic_output(Path(output), before_rename=take_document))
                digest = write_rootfs(image.layers, handle, progress_task=task, index=index, watch=watch,
                                      squashfs=sink)
                entries, tarball = digest.entries, WrittenFile(Path(output), digest.sha384, digest.size)
                if renderer is not None:
                    renderer.finish(digest.sha384)
            image_file = _squashfs_result(squashfs, squashfs_path) if squashfs is not None else None
    except LayerError as error:
        raise ExportError(f"{shown_as or image.reference}: {error}") from error
    return ExportResult(tarball=tarball, entries=entries, image=image, sbom=documents[0] if documents else None,
                        squashfs=image_file)


def _tar_bytes(image: Image) -> int:
    return sum(layer.tar_path.stat().st_size for layer in image.layers)


def _squashfs_result(request: SquashfsRequest, written: Path | None) -> SquashfsImage:
    """The image's digest, read back from the temporary file tar2sqfs wrote."""
    assert written is not None
    with writing(request.output):
        sha384, size = image_digest(written)
    return SquashfsImage(request.output, sha384, size, tool=f"{TAR2SQFS} (squashfs-tools-ng) {request.tool.version}",
                         settings=request.tool.settings)


@contextmanager
def _atomic_output(output: Path, *, before_rename: Callable[[], object] | None = None) -> Iterator[_OutputFile]:
    """A temporary file beside `output`, renamed over it on success and removed on any failure.

    A failing write (disk full, quota, I/O error) is an OutputError naming `output`; errors of
    reading the layers pass through as they are. `before_rename` runs once the file is synced, as the
    last step that may still fail the export and remove it."""
    with _atomic_path(output) as temp_path:
        handle = open(temp_path, "w+b")  # noqa: SIM115 - closed below, before the rename
        try:
            out = _OutputFile(handle, output)
            try:
                yield out
            finally:
                out.wait()
            out.raise_failure()
            gate("export")  # tests: held with the tarball written beside `output`, not yet renamed
            with writing(output):
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            with suppress(OSError):  # after a failed write, closing would fail to flush the rest again
                handle.close()
        if before_rename is not None:
            before_rename()


@contextmanager
def _atomic_path(output: Path) -> Iterator[Path]:
    """The path of a temporary file beside `output`, synced and renamed over it on success, removed on any failure."""
    with writing(output):
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{output.name}.tmp-", dir=output.parent)
        os.close(fd)
    temp_path = Path(name)
    try:
        yield temp_path
        with writing(output):
            _fsync_file(temp_path)
            os.chmod(temp_path, new_file_mode())  # mkstemp's 0600 would hide the file from other users
            os.replace(temp_path, output)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    with writing(output):
        fsync_directory(output.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _OutputFile:
    """The temporary output's `write`, with its OSErrors turned into an OutputError naming the output.

    Every WRITE_BACK_STEP bytes, a thread has the disk take what was written so far (fdatasync), so
    the disk works while the rest is being compressed, and the fsync that ends the export waits for
    the last step only. A failed write-back is raised by `raise_failure`: the kernel reports a write-back
    error once per open file, so the final fsync might not see it again."""

    def __init__(self, handle: BinaryIO, output: Path) -> None:
        self.handle, self.output = handle, output
        self.unsynced = 0
        self.write_back: threading.Thread | None = None
        self.failure: OSError | None = None

    def write(self, data: bytes) -> int:
        with writing(self.output):
            written = self.handle.write(data)
        self.unsynced += written
        if self.unsynced >= WRITE_BACK_STEP and (self.write_back is None or not self.write_back.is_alive()):
            self.unsynced = 0
            self.write_back = threading.Thread(target=self._write_back, name="output-write-back", daemon=True)
            self.write_back.start()
        return written

    def wait(self) -> None:
        """Until the write-back under way, if any, is done."""
        if self.write_back is not None:
            self.write_back.join()

    def raise_failure(self) -> None:
        if self.failure is not None:
            with writing(self.output):
                raise self.failure

    def _write_back(self) -> None:
        try:
            os.fdatasync(self.handle.fileno())
        except OSError as error:
            self.failure = self.failure or error
