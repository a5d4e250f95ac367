"""Input matrices that are not dense arrays: one-hot blocks as row indices, and scipy sparse matrices (filled in by the sparse-input work)."""
