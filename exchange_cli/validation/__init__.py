"""Finding problems in specs (checker) and rendering them (reporter), kept apart."""
