"""Check an image against its spec: gear or boutique rules, skips applied, results as validation records."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..export import ExportError
from ..image.model import Image, LayerStored
from ..image.resolve import ExportOptions, open_image
from ..progress import NullProgress, Progress
from ..rootfs.errors import LayerError
from ..rootfs.index import LayerIndex
from ..specs import SpecFile, SpecKind, locate
from ..validation.checker import json_problems
from ..validation.policy import image_problems
from ..validation.problems import Problem, Report, Severity, SpecResult
from .command import command_problems
from .executables import image_path
from .gear import gear_problems
from .rootfs_view import RootfsView

_NO_PROGRESS = NullProgress()


def check_image(spec: dict[str, Any], kind: SpecKind, image: Image, *, skipped: Collection[str] = (),
                index: LayerIndex | None = None) -> list[Problem]:
    """The conformance problems of `image` for `spec`; skipped rules' failures are kept as info.
    `index`: pass 1 over the layers to build the checked tree with (the caller's, see RootfsView)."""
    try:
        with RootfsView(image.layers, index) as view:
            if kind is SpecKind.GEAR:
                problems = gear_problems(spec, view, image.config)
            else:
                problems = boutique_problems(spec, view, image.config)
    except LayerError as error:
        raise ExportError(f"{image.reference}: {error}") from error
    return [_as_skipped(p) if p.rule in skipped else p for p in problems]


def boutique_problems(spec: dict[str, Any], view: RootfsView, config: dict[str, Any]) -> list[Problem]:
    command_line = spec.get("command-line")
    if not isinstance(command_line, str):
        return []
    working_dir = (config.get("config") or {}).get("WorkingDir") or "/"
    return command_problems(view, command_line, search_path=image_path(config), working_dir=working_dir,
                            pointer_what="the command-line")


def check_spec_files(paths: Iterable[Path], options: ExportOptions, *, skipped: Collection[str] = (),
                     progress: Progress = _NO_PROGRESS, workers: int = 1) -> Report:
    """`exchange check-image`: each spec file's image, from the export's sources, against the spec;
    `workers` images at once, the results in the order of `paths`."""
    def one(path: Path) -> SpecResult:
        return check_spec_file(path, options, skipped=skipped, progress=progress)

    paths = list(paths)
    if workers <= 1 or len(paths) <= 1:
        return Report([one(path) for path in paths], noun="image")
    with ThreadPoolExecutor(max_workers=min(workers, len(paths)), thread_name_prefix="check-image") as pool:
        return Report(list(pool.map(one, paths)), noun="image")


def check_spec_file(path: Path, options: ExportOptions, *, skipped: Collection[str] = (),
                    progress: Progress = _NO_PROGRESS) -> SpecResult:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    spec = SpecFile.read(path, display_path=str(path), relative_path=_spec_place(path))
    result = SpecResult(str(path), spec.kind.value, name=spec.name, version=spec.version)
    if spec.location is not None:
        result.org = spec.location.org
    if not spec.document.ok:
        result.problems += json_problems(spec.document)
        return result
    if not isinstance(spec.data, dict):
        result.problems.append(Problem("json-syntax", "the spec is not a JSON object"))
        return result
    problems, reference = image_problems(spec.data, spec.kind)
    result.problems += problems
    if reference is None:
        return result
    with progress.row(reference.original, "fetch", done="fetched") as row:
        image = open_source_image(reference.original, options, row)
    result.problems += check_image(spec.data, spec.kind, image, skipped=skipped)
    return result


def open_source_image(image: str, options: ExportOptions, progress: Progress,
                      layer_stored: LayerStored | None = None) -> Image:
    """`image` resolved from the sources the export options name, layers verified in their cache;
    `layer_stored` hears of each layer as it is stored (see open_image)."""
    return open_image(image, platform=options.platform, source=options.source,
                      insecure_registries=options.insecure_registries, oci_layout=options.oci_layout,
                      cache=options.cache, progress=progress, layer_stored=layer_stored)


def _spec_place(path: Path) -> str | None:
    """`gears/<org>/<file>.json` when the file sits at such a place, in a repository or not."""
    candidate = "/".join(path.resolve().parts[-3:])
    return candidate if locate(candidate) is not None else None


def _as_skipped(problem: Problem) -> Problem:
    return Problem(problem.rule, f"skipped (--skip-check {problem.rule}): {problem.message}", problem.pointer,
                   Severity.INFO)
