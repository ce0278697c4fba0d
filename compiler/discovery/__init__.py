"""Discovery: read a connection's catalog through a fingerprinted cache that is never stale."""
