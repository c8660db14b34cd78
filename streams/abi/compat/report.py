"""Compat check results and their renderings: text, JSON and JUnit XML for CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from streams.abi.compat.checker import CompatMode, Incompatibility

__all__ = ["CompatReport", "SubjectResult"]


@dataclass(frozen=True, slots=True)
class SubjectResult:
    """One subject's verdict.

    ``history`` counts the previous versions found (checked or not: NONE checks
    none); ``removed`` marks a previous subject missing from the new set;
    ``renamed_from`` the previous subject a new one names in ``aliases``.
    """

    subject: str
    mode: CompatMode
    checked_against: tuple[str, ...]
    incompatibilities: tuple[Incompatibility, ...]
    history: int = 0
    removed: bool = False
    renamed_from: str | None = None

    @property
    def ok(self) -> bool:
        return not self.incompatibilities

    @property
    def title(self) -> str:
        if self.removed:
            return f"{self.subject} (removed)"
        if self.renamed_from:
            return f"{self.subject} (renamed from {self.renamed_from})"
        return self.subject


@dataclass(frozen=True, slots=True)
class CompatReport:
    """The outcome of ``rspp compat check``: one result per subject.

    A check that found no previous version of any subject (and no removed
    subject) compared nothing; it fails unless ``allow_empty`` was asked for.
    """

    source: str
    against: str
    subjects: tuple[SubjectResult, ...]
    allow_empty: bool = False

    @property
    def empty_reason(self) -> str | None:
        """Why nothing was checked, or None if something was."""
        if any(s.history or s.removed for s in self.subjects):
            return None
        if not self.subjects:
            return f"no subject found in {self.source}"
        names = ", ".join(s.subject for s in self.subjects)
        return f"no previous version of {names} in {self.against}"

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.subjects) and (self.allow_empty or self.empty_reason is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "against": self.against,
            "nothing_checked": self.empty_reason,
            "subjects": [
                {
                    "subject": s.subject,
                    "mode": s.mode.value,
                    "ok": s.ok,
                    "removed": s.removed,
                    "renamed_from": s.renamed_from,
                    "previous_versions": s.history,
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
                f"{status} {s.title} [{s.mode.value}] against {versions} previous version(s)"
            )
            lines.extend(f"     {i.line()}" for i in s.incompatibilities)
        empty = self.empty_reason
        if empty is not None:
            lines.append(f"nothing checked: {empty}")
        if empty is not None and not self.allow_empty:
            verdict = "NOT CHECKED"
        else:
            verdict = "compatible" if self.ok else "INCOMPATIBLE"
        lines.append(f"{verdict}: {self.source} against {self.against}")
        return "\n".join(lines)

    def to_junit(self) -> str:
        """One testcase per (subject, previous version); a failure lists what breaks it."""
        suite = ET.Element("testsuite", name="rspp compat check")
        cases = failures = 0
        empty = self.empty_reason
        if empty is not None:
            cases += 1
            case = ET.SubElement(suite, "testcase", classname="compat", name="something checked")
            if not self.allow_empty:
                failures += 1
                ET.SubElement(case, "failure", message=f"nothing checked: {empty}", type="EMPTY")
        for s in self.subjects:
            for label in s.checked_against or ("(no previous version)",):
                cases += 1
                case = ET.SubElement(
                    suite, "testcase", classname=s.title, name=f"{s.mode.value} vs {label}"
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
