"""Conformance checks: does an image's flattened rootfs give the spec what it needs to run?"""
