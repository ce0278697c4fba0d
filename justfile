# Thin wrappers over dev.py, which sets up .venv itself.
test *ARGS:
    python3 dev.py test {{ARGS}}
lint:
    python3 dev.py lint
fmt:
    python3 dev.py fmt
golden:
    python3 dev.py golden
bench *ARGS:
    python3 dev.py bench {{ARGS}}
demo:
    python3 dev.py demo
