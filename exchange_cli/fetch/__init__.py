"""Downloading a processed rootfs and checking it is the one the manifest names."""
