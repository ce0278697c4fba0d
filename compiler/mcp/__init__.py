"""`osiris mcp`: the compiler, registry and discovery as Model Context Protocol tools."""
