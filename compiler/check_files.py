"""Rules of the file components that a JSON schema cannot say: pandas type names in `dtype`."""

from __future__ import annotations

from osiris.oml.diagnostics import DiagnosticList
from osiris.oml.suggest import close_matches, did_you_mean, replacements
from osiris.oml.yamltree import YMap, YScalar
from osiris.runtime.contract.csv_types import PANDAS_TYPES, duckdb_type


def check_dtype(component: str, config_node: YMap, diagnostics: DiagnosticList) -> None:
    """OML140 for a `dtype` value that is no pandas type name the CSV reader knows."""
    entry = config_node.get("dtype")
    if entry is None or not isinstance(entry.value, YMap):
        return
    for column in entry.value.entries:
        value = column.value
        if not isinstance(value, YScalar) or not isinstance(value.value, str):
            continue  # a wrong type is the schema's diagnostic
        if value.template is not None or not value.value.strip():
            continue  # a ${params.x} value is checked once it has one
        if duckdb_type(value.value) is not None:
            continue
        matches = close_matches(value.value, list(PANDAS_TYPES))
        diagnostics.error(
            "OML140",
            f"dtype of column '{column.key.value}' is not a type {component} knows: "
            f"{value.value!r}",
            value.span,
            why="dtype takes upstream Osiris's pandas type names (int64, Int64, float64, str, "
            "object, bool, datetime64[ns], ...), read as the matching SQL type."
            + did_you_mean(matches),
            fix="Use one of those names, or give the column an SQL type in column_types.",
            example=f'column_types: {{{column.key.value}: "DECIMAL(12,2)"}}',
            suggestions=replacements(matches, value.span, quote=True),
        )
