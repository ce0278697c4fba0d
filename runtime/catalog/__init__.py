"""Database and file catalogs: what discovery reads, for `osiris discover`, doctor and checks."""
