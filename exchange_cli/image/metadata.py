"""Image metadata (manifests, indexes, configs) as JSON, with errors that name the image and the document."""

from __future__ import annotations

import json
from typing import Any

from .errors import ImageError


def parse_json(data: bytes, *, image: str, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise ImageError(f"{image}: {what} is not valid JSON: {exc}") from exc


def parse_json_object(data: bytes, *, image: str, what: str) -> dict[str, Any]:
    parsed = parse_json(data, image=image, what=what)
    if not isinstance(parsed, dict):
        raise ImageError(f"{image}: {what} is not a JSON object")
    return parsed
