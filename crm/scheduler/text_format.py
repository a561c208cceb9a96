"""Metric families and the Prometheus text format (0.0.4) they are written in,
byte for byte as prometheus_client's `generate_latest` writes its own families
of the same kinds (counter, gauge, info, gauge histogram).

Ours because of their cost: with 1,000 jobs a scrape is some 25,000 samples,
and prometheus_client's families and writer spent most of a scrape's time on
them (see the metrics benchmark). tests/scheduler/test_metrics.py compares.
"""

from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

# How the text format names and types what each kind of family holds.
SAMPLE_SUFFIX = {"counter": "_total", "info": "_info"}
TEXT_TYPE = {"info": "gauge", "gaugehistogram": "histogram"}
SEPARATE_GAUGES = ("_gcount", "_gsum")  # written after the family, each as a gauge


@dataclass
class Family:
    name: str
    type: str  # "counter", "gauge", "info" or "gaugehistogram"
    documentation: str
    # (sample name suffix, labels as (name, value) pairs sorted by name, value)
    samples: list[tuple[str, tuple, float]] = field(default_factory=list)

    def add(self, labels: tuple = (), value: float = 1) -> None:
        self.samples.append((SAMPLE_SUFFIX.get(self.type, ""), labels, value))

    def add_histogram(self, labels: tuple, buckets: list[tuple[str, int]], total: float) -> None:
        """`buckets`: (upper bound, cumulative count), the last "+Inf"."""
        labels = tuple(sorted(labels))
        before_le = all(name < "le" for name, _ in labels)
        for bound, count in buckets:
            with_bound = (*labels, ("le", bound))
            if not before_le:
                with_bound = tuple(sorted(with_bound))
            self.samples.append(("_bucket", with_bound, count))
        self.samples.append(("_gcount", labels, buckets[-1][1]))
        self.samples.append(("_gsum", labels, total))


def render(families: list[Family]) -> bytes:
    out = []
    # A job's labels recur in every family, and sample values repeat (0, 1, counts).
    label_texts, pair_texts, value_texts = {}, {}, {}
    for family in families:
        name = family.name + SAMPLE_SUFFIX.get(family.type, "")
        help_text = _escape_help(family.documentation)
        out.append(f"# HELP {name} {help_text}\n")
        out.append(f"# TYPE {name} {TEXT_TYPE.get(family.type, family.type)}\n")
        separate = {suffix: [] for suffix in SEPARATE_GAUGES}
        for suffix, labels, value in family.samples:
            text = label_texts.get(labels)
            if text is None:
                text = label_texts[labels] = _label_text(labels, pair_texts)
            value_text = value_texts.get(value)
            if value_text is None:
                value_text = value_texts[value] = floatToGoString(value)
            line = f"{family.name}{suffix}{text} {value_text}\n"
            separate.get(suffix, out).append(line)
        for suffix, lines in separate.items():
            if lines:
                gauge = family.name + suffix
                out.append(f"# HELP {gauge} {help_text}\n# TYPE {gauge} gauge\n")
                out.extend(lines)
    return "".join(out).encode("utf-8")


def _label_text(labels: tuple, pair_texts: dict) -> str:
    if not labels:
        return ""
    pieces = []
    for pair in labels:
        piece = pair_texts.get(pair)
        if piece is None:
            piece = pair_texts[pair] = f'{pair[0]}="{_escape_label(pair[1])}"'
        pieces.append(piece)
    return "{" + ",".join(pieces) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
