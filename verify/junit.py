"""junit.xml: one test case per claim, grouped by section, for CI dashboards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby
from typing import Any


def render(report: dict[str, Any]) -> str:
    suites = ET.Element("testsuites", name="verify")
    by_section = groupby(report["claims"], key=lambda c: c["section"])
    for section, group in by_section:
        claims = list(group)
        suite = ET.SubElement(suites, "testsuite", name=f"section {section}", tests=str(len(claims)))
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for claim in claims:
            case = ET.SubElement(suite, "testcase", classname=f"verify.section_{section}", name=claim["id"],
                                 time=f"{claim['seconds']:.3f}")
            verdict = claim["verdict"]
            detail = "; ".join(f"{c['name']}: {c['verdict']} {c['message']}".strip() for c in claim["checks"])
            if verdict == "failed":
                counts["failures"] += 1
                ET.SubElement(case, "failure", message=f"{claim['id']} failed", type="failed").text = detail
            elif verdict == "error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=f"{claim['id']} errored", type="error").text = detail
            elif verdict in ("uncovered", "skipped"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=verdict)
            ET.SubElement(case, "system-out").text = f"verdict: {verdict}"
        for key, value in counts.items():
            suite.set(key, str(value))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
