"""Image sources: every source yields the same `Image` (config + ordered layers)."""
