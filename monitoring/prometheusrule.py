"""Write the Kubernetes PrometheusRule from the one rule file, or check it is current.

    python monitoring/prometheusrule.py          # (re)write the component's file
    python monitoring/prometheusrule.py --check  # exit 1 if it is stale

`make monitoring-rules` runs the first; serving's tests run the second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "monitoring" / "prometheus" / "rules.yml"
TARGET = ROOT / "k8s" / "components" / "monitoring" / "prometheusrule.yaml"
HEADER = (
    "# Generated from monitoring/prometheus/rules.yml by `make monitoring-rules`;\n"
    "# edit that file, not this one. Add the label your Prometheus' ruleSelector\n"
    "# expects (kube-prometheus-stack: release: <its release name>) in an overlay.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the expressions) as literal blocks, as in the rule file."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render(rules_text: str) -> str:
    """The PrometheusRule manifest holding the rule file's groups unchanged."""
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "mnist-serving"},
        "spec": yaml.safe_load(rules_text),
    }
    body = yaml.dump(
        manifest, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True
    )
    return HEADER + body


def main(argv: list[str]) -> int:
    """Write TARGET, or with --check report whether it matches RULES."""
    expected = render(RULES.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != expected:
            sys.stderr.write(
                f"{TARGET} is not generated from the current {RULES}; "
                "run `make monitoring-rules` and commit the result\n"
            )
            return 1
        return 0
    TARGET.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
