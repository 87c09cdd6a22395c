"""Delivery: copying processed images into the exchange's own registry, and delivering gears as images."""
