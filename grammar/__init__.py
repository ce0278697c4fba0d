"""The OML expression grammar (oml.lark), shipped as package data."""
