"""A tiny vocabulary of SVG shapes for the inline figures: Python places them, one template macro writes them.

Coordinates are rounded to 0.1 px so a rebuilt page is byte-identical. Text is kept as data and written by the
autoescaping template, so a name from a result file can never become markup. Styles are chosen to stay apart in
greyscale: fills differ in lightness and carry patterns, lines differ in dash and marker shape, not only in hue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# (stroke colour, dash pattern, marker) per line; colours run dark to light so greyscale keeps them apart, and the
# dash and marker change faster than the colour so neighbours in the legend never share two of the three.
LINE_COLOURS = ("#1b1f24", "#0b5cad", "#b35806", "#1a7f37", "#8250df", "#6e7781", "#cf222e", "#0a7f8f")
DASHES = ("", "6 3", "2 2", "8 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond", "cross")

# Lines drawn as context behind the coloured ones (models a figure does not single out): thin, light grey, no marker.
CONTEXT_COLOUR, CONTEXT_WIDTH = "#c4c9cf", "0.9"

# Fills of the three modalities (text, audio, vision): dark / middle / light, with a pattern on the two lighter ones.
MODALITY_FILLS = ({"fill": "#24476b", "pattern": ""},
                  {"fill": "#8fb3d9", "pattern": "hatch"},
                  {"fill": "#e3e7eb", "pattern": "dots"})


def r(value: float) -> str:
    """A coordinate as text, rounded for stable output."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


@dataclass
class Figure:
    """One inline SVG: `shapes` are dicts with a "kind" ("line", "rect", "text", "marker", "path") and attributes."""

    id: str
    width: float
    height: float
    title: str                        # the SVG <title>: what the figure shows
    description: str                  # alt text (<desc> and aria-label): the numbers in words, where they fit
    shapes: list[dict[str, Any]] = field(default_factory=list)

    def line(self, x1: float, y1: float, x2: float, y2: float, css: str = "axis") -> None:
        self.shapes.append({"kind": "line", "x1": r(x1), "y1": r(y1), "x2": r(x2), "y2": r(y2), "css": css})

    def polyline(self, points: list[tuple[float, float]], colour: str, dash: str, width: str | None = None) -> None:
        """`width`: stroke width as text (1.6 when None), thinner for lines drawn as context behind others."""
        self.shapes.append({"kind": "path", "d": "M" + " L".join(f"{r(x)} {r(y)}" for x, y in points),
                            "colour": colour, "dash": dash, **({"width": width} if width else {})})

    def marker(self, x: float, y: float, shape: str, colour: str, label: str = "") -> None:
        self.shapes.append({"kind": "marker", "d": marker_path(shape, x, y), "colour": colour, "label": label})

    def rect(self, x: float, y: float, width: float, height: float, fill: str, pattern: str = "",
             label: str = "") -> None:
        self.shapes.append({"kind": "rect", "x": r(x), "y": r(y), "width": r(max(width, 0.0)),
                            "height": r(height), "fill": fill, "pattern": pattern, "label": label})

    def text(self, x: float, y: float, text: str, anchor: str = "start", css: str = "") -> None:
        self.shapes.append({"kind": "text", "x": r(x), "y": r(y), "text": text, "anchor": anchor, "css": css})


def marker_path(shape: str, x: float, y: float, size: float = 3.5) -> str:
    """An SVG path for a marker centred on (x, y)."""
    s = size
    if shape == "square":
        return f"M{r(x - s)} {r(y - s)} h{r(2 * s)} v{r(2 * s)} h{r(-2 * s)} Z"
    if shape == "triangle":
        return f"M{r(x)} {r(y - s * 1.2)} L{r(x + s * 1.2)} {r(y + s)} L{r(x - s * 1.2)} {r(y + s)} Z"
    if shape == "diamond":
        return f"M{r(x)} {r(y - s * 1.3)} L{r(x + s * 1.3)} {r(y)} L{r(x)} {r(y + s * 1.3)} L{r(x - s * 1.3)} {r(y)} Z"
    if shape == "cross":
        return f"M{r(x - s)} {r(y - s)} L{r(x + s)} {r(y + s)} M{r(x - s)} {r(y + s)} L{r(x + s)} {r(y - s)}"
    # a circle as two arcs: a path like the others, so one template branch draws every marker
    return f"M{r(x - s)} {r(y)} a{r(s)} {r(s)} 0 1 0 {r(2 * s)} 0 a{r(s)} {r(s)} 0 1 0 {r(-2 * s)} 0 Z"


def line_style(index: int) -> tuple[str, str, str]:
    """(colour, dash, marker) of the index-th line: neighbours differ in all three, and lines that share a colour
    (every eighth) differ in dash and marker, so the lines stay apart in greyscale."""
    colours = len(LINE_COLOURS)
    return (LINE_COLOURS[index % colours], DASHES[(index + index // colours) % len(DASHES)],
            MARKERS[index % len(MARKERS)])


def legend(figure: Figure, left: float, names: list[str], grey_label: str | None = None) -> None:
    """One entry per coloured line (styles in `line_style` order), then, with `grey_label`, one for the grey context
    lines; entries 15 px apart from y = 30."""
    for index, name in enumerate(names):
        colour, dash, marker = line_style(index)
        top = 30 + index * 15
        figure.polyline([(left, top), (left + 26, top)], colour, dash)
        figure.marker(left + 13, top, marker, colour)
        figure.text(left + 32, top + 4, name)
    if grey_label:
        top = 30 + len(names) * 15
        figure.polyline([(left, top), (left + 26, top)], CONTEXT_COLOUR, "", CONTEXT_WIDTH)
        figure.text(left + 32, top + 4, grey_label)
