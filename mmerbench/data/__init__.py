"""Data layer: specs, the dataset registry, readers, synthetic twins, cache, batching."""
