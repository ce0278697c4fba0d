"""Runtime: executes a compiled manifest; depends only on the manifest contract, never on oml or compiler."""
