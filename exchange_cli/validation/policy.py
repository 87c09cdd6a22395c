"""The exchange's own policy on top of the schemas: every spec names a pinned, well-formed image."""

from __future__ import annotations

from typing import Any

from ..reference import ImageReference, ReferenceError, parse_reference
from ..specs import SpecKind, image_field
from .problems import Problem

IMAGE_FIELDS = {
    SpecKind.GEAR: "custom.gear-builder.image (or custom.docker-image)",
    SpecKind.BOUTIQUE: "container-image.image",
}


def image_problems(data: Any, kind: SpecKind) -> tuple[list[Problem], ImageReference | None]:
    """Problems with the spec's image reference, and the parsed reference when it is usable."""
    pointer, value = image_field(data, kind)
    if value is None:
        return [Problem("image-missing", f"no image: set {IMAGE_FIELDS[kind]}", pointer)], None
    if not isinstance(value, str):
        return [Problem("image-reference", f"the image must be a string, not {type(value).__name__}", pointer)], None
    try:
        reference = parse_reference(value)
    except ReferenceError as error:
        return [Problem("image-reference", f"{value!r}: {error}", pointer)], None
    if not reference.is_pinned:
        return [Problem("image-unpinned",
                        f"{value!r} has no tag or digest and would mean 'latest'; pin it, e.g. {value}:1.0.0 or {value}@sha256:…",
                        pointer)], reference
    return [], reference
