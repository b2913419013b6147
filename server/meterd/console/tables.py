"""Tables for people and scripts: aligned text (dollars by default), JSON, CSV and markdown from
one list of typed columns, so every command prints the same figures in every format."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from meterd.console import fmt

FORMATS = ("table", "json", "csv", "markdown")


@dataclass(frozen=True)
class Column:
    name: str
    header: str
    kind: str = "text"  # text, int, usd (nano-USD int), pct (a fraction), seconds (float or None), time

    @property
    def right(self) -> bool:
        return self.kind in ("int", "usd", "pct", "seconds")


def _human(col: Column, value) -> str:
    if value is None or value == "":
        return "—" if col.kind != "text" else ""
    if col.kind == "usd":
        return fmt.usd(value)
    if col.kind == "int":
        return fmt.number(value)
    if col.kind == "pct":
        return fmt.percent(value, 2)
    if col.kind == "seconds":
        return f"{value * 1000:,.0f} ms"
    if col.kind == "time":
        return fmt.utc(value)
    return str(value)


def _machine(col: Column, value):
    if value is None:
        return None
    if col.kind == "usd":
        return f"{fmt.dollars(value):f}"
    if col.kind == "time":
        return fmt.iso(value)
    if col.kind == "pct":
        return round(value, 6)
    return value


def render(columns: list[Column], rows: list[dict], form: str = "table") -> str:
    if form == "json":
        out = []
        for row in rows:
            item = {}
            for col in columns:
                value = row.get(col.name)
                if col.kind == "usd":
                    item[f"{col.name}_nanos"] = value
                    item[f"{col.name}_usd"] = _machine(col, value)
                else:
                    item[col.name] = _machine(col, value)
            out.append(item)
        return json.dumps(out, indent=2, default=str) + "\n"
    if form == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([f"{c.name}_usd" if c.kind == "usd" else c.name for c in columns])
        for row in rows:
            writer.writerow(["" if (v := _machine(c, row.get(c.name))) is None else v for c in columns])
        return buf.getvalue()
    cells = [[_human(c, row.get(c.name)) for c in columns] for row in rows]
    if form == "markdown":
        lines = ["| " + " | ".join(c.header for c in columns) + " |"]
        lines.append("|" + "|".join(" ---: " if c.right else " --- " for c in columns) + "|")
        lines += ["| " + " | ".join(v.replace("|", "\\|") for v in line) + " |" for line in cells]
        return "\n".join(lines) + "\n"
    if form != "table":
        raise ValueError(f"unknown format {form!r}; use one of {', '.join(FORMATS)}")
    widths = [max([len(c.header)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]

    def line(values):
        parts = [v.rjust(w) if c.right else v.ljust(w) for v, w, c in zip(values, widths, columns, strict=True)]
        return "  ".join(parts).rstrip()

    text = [line([c.header for c in columns]), line(["-" * w for w in widths])]
    text += [line(values) for values in cells]
    if not rows:
        text.append("(no rows)")
    return "\n".join(text) + "\n"
