"""YAML the runtime reads (connections file, manifest) with alias expansion bounded.

The same bound as the compiler's reader (osiris.oml.yamltree, which may not import this module;
a test keeps the two numbers equal): each alias repeats its anchor's whole value, so nine levels
of nine aliases in a 1 KiB file would make 387 million nodes, minutes and gigabytes.
"""

from __future__ import annotations

from typing import Any

MAX_ALIAS_NODES = 100_000


class AliasBomb(ValueError):
    """Aliases would expand the document past MAX_ALIAS_NODES; the message names the alias."""


def _children(node: Any) -> list[Any]:
    if node.id == "sequence":
        return list(node.value)
    if node.id == "mapping":
        return [child for pair in node.value for child in pair]
    return []


def _expanded_sizes(root: Any) -> dict[int, int]:
    """Nodes in each composed node's value with its aliases written out (a cycle counts once)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if id(node) in sizes:
            continue
        sizes[id(node)] = 1
        stack.append((node, True))
        stack.extend(
            (child, False) for child in reversed(_children(node)) if id(child) not in sizes
        )
    return sizes


def alias_overflow(root: Any) -> tuple[int, int] | None:
    """(index of the alias, in document order, that takes the expansion past MAX_ALIAS_NODES,
    the nodes that alias repeats), or None when the composed document stays within the bound.
    Composed nodes are shared: an alias is the same node met again."""
    sizes: dict[int, int] | None = None
    seen: set[int] = set()
    added = aliases = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(reversed(_children(node)))
            continue
        if sizes is None:
            sizes = _expanded_sizes(root)
        added += sizes[id(node)]
        if added > MAX_ALIAS_NODES:
            return aliases, sizes[id(node)]
        aliases += 1
    return None


def safe_load_bounded(text: str | bytes) -> Any:
    """yaml.safe_load (libyaml when present), but AliasBomb instead of expanding aliases past
    MAX_ALIAS_NODES; YAML errors propagate as yaml.YAMLError."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        overflow = alias_overflow(node)
        if overflow is not None:
            raise AliasBomb(_bomb_message(text, loader, *overflow))
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _bomb_message(text: str | bytes, loader: Any, index: int, size: int) -> str:
    import yaml

    where = " "
    name = "an alias"
    for event in yaml.parse(text, Loader=type(loader)):
        if isinstance(event, yaml.AliasEvent):
            if index == 0:
                name = f"*{event.anchor}"
                mark = event.start_mark
                if mark is not None:
                    where = f"{mark.line + 1}:{mark.column + 1}: "
                break
            index -= 1
    return (
        f"{where}YAML alias {name} expands the document past {MAX_ALIAS_NODES:,} nodes "
        f"(it repeats {size:,}); aliases inside anchored values multiply, so write the values out"
    )
