"""Figures, the markdown table and the JSON file they are written to."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    benchmark: str  # e.g. "auto-close"
    measure: str  # what was measured, in words
    ours: float
    unit: str  # s, ms, MB, threads, ...
    reference: float | None = None  # the same measure, done the reference way
    reference_name: str = ""
    target: str = ""  # in words, e.g. "≤ 1.5x hand-written SQL"
    met: bool | None = None  # None: no target

    @property
    def ratio(self) -> float | None:
        if not self.reference:
            return None
        return self.ours / self.reference

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def markdown_table(figures: list[Figure]) -> str:
    lines = [
        "| benchmark | measure | ours | reference | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        reference = (
            f"{_number(figure.reference, figure.unit)} ({figure.reference_name})"
            if figure.reference is not None
            else "-"
        )
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: ""}[figure.met]
        lines.append(
            f"| {figure.benchmark} | {figure.measure} | {_number(figure.ours, figure.unit)} "
            f"| {reference} | {ratio} | {figure.target} | {met} |"
        )
    return "\n".join(lines)


def write_json(figures: list[Figure], path: Path, about: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({**about, "figures": [f.as_dict() for f in figures]}, indent=2, default=str)
        + "\n"
    )
