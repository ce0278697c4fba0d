"""OML: the language front end — source text to typed AST, expressions, diagnostics and their renderers."""
