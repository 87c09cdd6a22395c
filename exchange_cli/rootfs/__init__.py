"""An image's layers flattened into one canonical tree, written as a tarball (tarball.py) or a squashfs image
(squashfs.py)."""

# The formats a rootfs is written and published in, the default first: `export --artifact`, `fetch --artifact`.
ARTIFACTS = ("tarball", "squashfs")
