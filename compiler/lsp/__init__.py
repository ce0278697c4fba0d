"""oml-lsp: the OML language server; pure feature functions in small modules, wired in server.py."""
