"""Component specs, their meta-schema, the OML and manifest schemas, and connection schemas, shipped as package data."""
