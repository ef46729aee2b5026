"""`model.summary()`: Keras 3's table, drawn as its `rich` table is drawn, without `rich`."""

from __future__ import annotations

import shutil

_HEADER = ("Layer (type)", "Output Shape", "Param #", "Connected to")
#: Where columns end, as fractions of the line: for a stack of layers, and for a graph (with
#: the "Connected to" column); and the default line lengths of each.
_POSITIONS = {3: (0.45, 0.80, 1.0), 4: (0.3, 0.56, 0.74, 1.0)}
_LINE_LENGTH = {3: 88, 4: 108}
_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def readable_size(n_bytes: float) -> str:
    """Keras's `readable_memory_size`: 1024 steps, labelled KB/MB, two decimals."""
    unit = 0
    while n_bytes / 1024 >= 1 and unit < len(_UNITS) - 1:
        n_bytes /= 1024
        unit += 1
    return f"{n_bytes:.2f} {_UNITS[unit]}"


def _ratio_reduce(total: int, widths: list[int]) -> list[int]:
    """`rich`'s last-resort shrink: take `total` off the columns, evenly, left to right."""
    result, remaining, ratio_left = [], total, len(widths)
    for width in widths:
        taken = min(width, round(remaining / ratio_left))
        result.append(width - taken)
        remaining -= taken
        ratio_left -= 1
    return result


def column_widths(line_length: int, columns: int = 3) -> list[int]:
    """Each column's width inside the borders, padding included."""
    widths, current = [], 0
    for position in _POSITIONS[columns]:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(width + 2)
        current += width
    available = line_length - (len(widths) + 1)
    excess = sum(widths) - available
    return _ratio_reduce(excess, widths) if excess > 0 else widths


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap; a word longer than the cell ends in an ellipsis, as `rich` folds it."""
    lines: list[str] = []
    for word in text.split(" "):
        if len(word) > width:
            word = word[: width - 1] + "…"
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _row(cells: tuple[str, ...], widths: list[int], edge: str) -> list[str]:
    inner = [w - 2 for w in widths]
    wrapped = [_wrap(cell, w) for cell, w in zip(cells, inner)]
    lines = []
    for i in range(max(len(c) for c in wrapped)):
        parts = []
        for column, (cell_lines, width) in enumerate(zip(wrapped, inner)):
            text = cell_lines[i] if i < len(cell_lines) else ""
            text = text.rjust(width) if column == 2 else text.ljust(width)
            parts.append(f" {text} ")
        lines.append(edge + edge.join(parts) + edge)
    return lines


def _rule(widths: list[int], left: str, fill: str, middle: str, right: str) -> str:
    return left + middle.join(fill * w for w in widths) + right


def render(
    model_name: str,
    rows: list[tuple[str, ...]],
    totals: list[str],
    line_length: int | None = None,
) -> str:
    """The whole summary: title, table of `rows` (name, shape, params, and the layers it is
    connected to for a graph), then `totals` lines."""
    columns = len(rows[0]) if rows else 3
    if line_length is None:
        line_length = min(_LINE_LENGTH[columns], shutil.get_terminal_size().columns - 4)
    widths = column_widths(line_length, columns)
    lines = [f'Model: "{model_name}"', _rule(widths, "┏", "━", "┳", "┓")]
    lines += _row(_HEADER[:columns], widths, "┃")
    lines.append(_rule(widths, "┡", "━", "╇", "┩"))
    for i, row in enumerate(rows):
        if i:
            lines.append(_rule(widths, "├", "─", "┼", "┤"))
        lines += _row(row, widths, "│")
    lines.append(_rule(widths, "└", "─", "┴", "┘"))
    lines += [f" {line}" for line in totals]
    return "\n".join(lines)
