"""Render any tool's pydantic Output as rich tables: scalars in one table, lists of records in their own.

Long numeric series (sweeps, curves) are summarised (count, first, last, min, max); they are in the
JSON and the PNG in full.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel
from rich.table import Table

MAX_ROWS = 40
_SCALARS = (str, int, float, bool, type(None))


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple | list) and all(isinstance(v, _SCALARS) for v in value):
        if len(value) <= 4:
            return "(" + ", ".join(fmt(v) for v in value) + ")"
        numbers = [v for v in value if isinstance(v, int | float) and math.isfinite(v)]
        summary = f"{len(value)} values, first {fmt(value[0])}, last {fmt(value[-1])}"
        return summary + (f", min {fmt(min(numbers))}, max {fmt(max(numbers))}" if numbers else "")
    return str(value)


def _flatten(data: dict, prefix: str, rows: list, records: dict) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            records[name] = [{"key": k, **v} for k, v in value.items()]
        elif isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
            rows.append((name, f"{len(value)} series of {max(len(v) for v in value.values())} values "
                               "(see the JSON / PNG)"))
        elif isinstance(value, dict):
            _flatten(value, f"{name}.", rows, records)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            records[name] = value
        else:
            rows.append((name, fmt(value)))


def output_tables(output: BaseModel, title: str) -> list[Table]:
    """One key/value table of every scalar (nested fields dotted), then one table per list of records."""
    rows: list[tuple[str, str]] = []
    records: dict[str, list[dict]] = {}
    _flatten(output.model_dump(mode="python"), "", rows, records)
    main = Table(title=title, show_lines=False)
    main.add_column("field", style="cyan")
    main.add_column("value", overflow="fold")
    for name, value in rows:
        main.add_row(name, value)
    tables = [main]
    for name, items in records.items():
        columns = [k for k in items[0] if isinstance(items[0][k], (*_SCALARS, tuple))]
        more = f", first {MAX_ROWS}" if len(items) > MAX_ROWS else ""
        table = Table(title=f"{name} ({len(items)}){more}")
        for column in columns:
            table.add_column(column, overflow="fold")
        for item in items[:MAX_ROWS]:
            table.add_row(*(fmt(item.get(c)) for c in columns))
        tables.append(table)
    return tables
