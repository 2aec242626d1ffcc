"""Phase 2C: the data-quality audit of the spine and people, and its cleanup."""
