"""Compat check results and their renderings: text, JSON and JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from streams.abi.compat.checker import CompatMode, Incompatibility

__all__ = ["CompatReport", "SubjectResult"]


@dataclass(frozen=True, slots=True)
class SubjectResult:
    subject: str
    mode: CompatMode
    checked_against: tuple[str, ...]
    incompatibilities: tuple[Incompatibility, ...]

    @property
    def ok(self) -> bool:
        return not self.incompatibilities


@dataclass(frozen=True, slots=True)
class CompatReport:
    """The outcome of ``rspp compat check``: one result per subject."""

    source: str
    against: str
    subjects: tuple[SubjectResult, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.subjects)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "against": self.against,
            "subjects": [
                {
                    "subject": s.subject,
                    "mode": s.mode.value,
                    "ok": s.ok,
                    "checked_against": list(s.checked_against),
                    "incompatibilities": [
                        {
                            "path": i.path,
                            "rule": i.rule,
                            "detail": i.detail,
                            "breaks": i.against,
                            "direction": i.direction.name,
                            "avro_locations": i.location,
                        }
                        for i in s.incompatibilities
                    ],
                }
                for s in self.subjects
            ],
        }

    def to_text(self) -> str:
        lines: list[str] = []
        for s in self.subjects:
            status = "ok  " if s.ok else "FAIL"
            versions = len(s.checked_against)
            lines.append(
                f"{status} {s.subject} [{s.mode.value}] against {versions} previous version(s)"
            )
            lines.extend(f"     {i.line()}" for i in s.incompatibilities)
        if not self.subjects:
            lines.append("no subjects to check")
        lines.append(
            f"{'compatible' if self.ok else 'INCOMPATIBLE'}: {self.source} against {self.against}"
        )
        return "\n".join(lines)

    def to_junit(self) -> str:
        """One testcase per (subject, previous version); a failure lists what breaks it."""
        suite = ET.Element("testsuite", name="rspp compat check")
        cases = failures = 0
        for s in self.subjects:
            for label in s.checked_against or ("(no previous version)",):
                cases += 1
                case = ET.SubElement(
                    suite, "testcase", classname=s.subject, name=f"{s.mode.value} vs {label}"
                )
                broken = [i for i in s.incompatibilities if i.against == label]
                if broken:
                    failures += 1
                    failure = ET.SubElement(
                        case,
                        "failure",
                        message=f"{len(broken)} incompatibilit(ies)",
                        type=s.mode.value,
                    )
                    failure.text = "\n".join(i.line() for i in broken)
        suite.set("tests", str(cases))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)
