"""Compiler: spec registry, semantic checks, IR, lowering, canonical manifest emitter and the omlc/osiris CLIs."""
