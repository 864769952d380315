"""Readers: one module per public release format; importing a module registers its datasets."""
