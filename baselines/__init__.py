"""Classical multi-label baselines (BR, CC, LP) on pooled features."""
