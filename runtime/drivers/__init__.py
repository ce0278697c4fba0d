"""Drivers: one module per system; looked up by driver id through the registry, never by import path."""
