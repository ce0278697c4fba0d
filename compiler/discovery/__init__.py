"""Discovery: the fingerprinted cache, `osiris discover`, and catalog lookups for checks."""
