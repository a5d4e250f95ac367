"""Atomic file writes: a temporary file in the same folder, renamed over the target only when complete."""
