"""Phase 2C: the read-only data-quality audits of the spine and people (the cleanup that changes data is `ple.cleanup`)."""
