"""The Prometheus text format (0.0.4) of metric families, as
prometheus_client's `generate_latest` writes it, byte for byte, for the
families crm.scheduler.metrics makes (counter, gauge, info, gauge histogram).

Ours because of its cost: with 1,000 jobs a scrape is some 25,000 lines, and
`generate_latest` spends most of a scrape's time formatting them (see the
metrics benchmark). tests/scheduler/test_metrics.py compares the two.
"""

from prometheus_client.utils import floatToGoString

# How the text format names and types what OpenMetrics families hold.
TYPE_SUFFIX = {"counter": "_total", "info": "_info"}
TEXT_TYPE = {"info": "gauge", "gaugehistogram": "histogram", "stateset": "gauge"}
SEPARATE_GAUGES = ("_created", "_gsum", "_gcount")  # written last, each as a gauge


def render(families) -> bytes:
    out = []
    for family in families:
        name = family.name + TYPE_SUFFIX.get(family.type, "")
        help_text = _help(family.documentation)
        out.append(
            f"# HELP {name} {help_text}\n# TYPE {name} {TEXT_TYPE.get(family.type, family.type)}\n"
        )
        separate = {}
        for sample in family.samples:
            line = _sample_line(sample)
            suffix = sample.name[len(family.name) :]
            if suffix in SEPARATE_GAUGES:
                separate.setdefault(suffix, []).append(line)
            else:
                out.append(line)
        for suffix, lines in sorted(separate.items()):
            gauge = family.name + suffix
            out.append(f"# HELP {gauge} {help_text}\n# TYPE {gauge} gauge\n")
            out.extend(lines)
    return "".join(out).encode("utf-8")


def _sample_line(sample) -> str:
    value = floatToGoString(sample.value)
    if not sample.labels:
        return f"{sample.name} {value}\n"
    labels = ",".join(f'{key}="{_label(text)}"' for key, text in sorted(sample.labels.items()))
    return f"{sample.name}{{{labels}}} {value}\n"


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
