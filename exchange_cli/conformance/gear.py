"""What the Flywheel gear spec asks of a gear's container, checked on its rootfs."""

from __future__ import annotations

from typing import Any

from ..jsonpos import NotStrictJson, strict_data
from ..rootfs.tree import Directory
from ..specs import MAX_SPEC_BYTES
from ..validation.problems import Problem
from .command import command_problems
from .executables import executable_problems, find_executable, image_path
from .rootfs_view import RootfsView

FLYWHEEL_DIR = "/flywheel/v0"
RUN_SCRIPT = f"{FLYWHEEL_DIR}/run"
EMBEDDED_MANIFEST = f"{FLYWHEEL_DIR}/manifest.json"
BASH_DIRECTORIES = ("/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin")
COMPARED_FIELDS = ("name", "version")


def gear_problems(spec: dict[str, Any], view: RootfsView, config: dict[str, Any]) -> list[Problem]:
    problems = flywheel_dir_problems(view)
    if spec.get("command"):
        environment = spec.get("environment")
        search_path = (environment.get("PATH") if isinstance(environment, dict) else None) or image_path(config)
        problems += command_problems(view, str(spec["command"]), search_path=search_path, working_dir=FLYWHEEL_DIR,
                                     pointer_what="the gear's command")
    else:
        problems += executable_problems(view, RUN_SCRIPT, rule="rootfs-run-script",
                                        what="the gear sets no command, so it runs /flywheel/v0/run")
    problems += bash_problems(view)
    problems += embedded_manifest_problems(spec, view)
    return problems


def flywheel_dir_problems(view: RootfsView) -> list[Problem]:
    resolution = view.resolve(FLYWHEEL_DIR)
    if resolution.found and isinstance(resolution.node, Directory):
        return []
    reason = f"{FLYWHEEL_DIR} is not a directory" if resolution.found else resolution.explain()
    return [Problem("rootfs-flywheel-dir", f"a gear image needs the directory {FLYWHEEL_DIR}/: {reason}", FLYWHEEL_DIR)]


def bash_problems(view: RootfsView) -> list[Problem]:
    lookup = find_executable(view, [f"{directory}/bash" for directory in BASH_DIRECTORIES])
    if lookup.found is not None:
        return []
    detail = "; ".join(r.explain() for r in lookup.tried if r.links or r.found)
    message = f"no executable bash in {', '.join(BASH_DIRECTORIES)}: gears run their command with bash"
    return [Problem("rootfs-bash", message + (f" ({detail})" if detail else ""))]


def embedded_manifest_problems(spec: dict[str, Any], view: RootfsView) -> list[Problem]:
    resolution = view.resolve(EMBEDDED_MANIFEST)
    node = resolution.node  # set whenever the path was found
    if not resolution.found or node is None or isinstance(node, Directory):
        return []
    header = view.header(node)
    if header is None or not header.isreg():
        return []
    content = view.read_file(node, MAX_SPEC_BYTES)
    if content is None:
        return [_mismatch(f"the image's {EMBEDDED_MANIFEST} is larger than {MAX_SPEC_BYTES} bytes")]
    try:
        embedded = strict_data(content)
    except NotStrictJson as error:
        return [_mismatch(f"the image's {EMBEDDED_MANIFEST} is not valid JSON: {error}")]
    if not isinstance(embedded, dict):
        return [_mismatch(f"the image's {EMBEDDED_MANIFEST} is not a JSON object")]
    differing = [f"{key}: {embedded.get(key)!r} in the image, {spec.get(key)!r} in the spec"
                 for key in COMPARED_FIELDS if embedded.get(key) != spec.get(key)]
    if not differing:
        return []
    return [_mismatch(f"the image's {EMBEDDED_MANIFEST} differs from the spec: {'; '.join(differing)}")]


def _mismatch(message: str) -> Problem:
    return Problem("rootfs-manifest-mismatch", message, EMBEDDED_MANIFEST)
