"""The error every image source raises for a problem with an image, as opposed to with a blob's bytes."""

from __future__ import annotations

from ..errors import ExchangeError


class ImageError(ExchangeError):
    """An image cannot be resolved or fetched; the message names the image and what was asked for."""
