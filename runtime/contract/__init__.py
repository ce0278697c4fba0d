"""The contract between compiler and runtime: everything both sides must agree on, in one place.

The compiler imports only this package (and the runtime's public run entry, `osiris.runtime.cli`)
from the runtime; the runtime never imports the compiler.
"""
