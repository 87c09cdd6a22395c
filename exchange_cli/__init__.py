"""The `exchange` command: runs a gear exchange from specs to published rootfs artifacts."""

__version__ = "0.1.0"
