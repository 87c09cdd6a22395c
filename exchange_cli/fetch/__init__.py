"""Downloading a processed rootfs and checking it is the one the manifest names."""

ARTIFACTS = ("tarball", "squashfs")  # the published files of a version that fetch downloads
