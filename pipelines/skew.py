"""Version-skew checks the runtime runs before it executes a bundle (invariant 15).

    problems = check_skew(policy, bundle, runtime_abi=ABI_VERSION, today=date.today())

An empty list means the combination may run; every entry says what is out of
policy and what was expected.
"""

from __future__ import annotations

import datetime as dt

from pipelines.models.compat import AbiSkew, VersionSkewPolicy
from pipelines.models.resolved import PipelineBundle

__all__ = ["abi_skew_problem", "check_skew"]


def _uses(bundle: PipelineBundle, subject: str) -> bool:
    """Subjects are ``node_type:<type>`` or ``resolved:<dotted path>=<value>``."""
    if subject.startswith("node_type:"):
        return any(p.node_type == subject.removeprefix("node_type:") for p in bundle.node_digests)
    if subject.startswith("resolved:") and "=" in subject:
        path, _, expected = subject.removeprefix("resolved:").partition("=")
        value: object = bundle.resolved_spec.model_dump(mode="json")
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, dict) and "source" in value:
            value = value.get("value")
        return str(value) == expected
    return False


def _major_minor(version: str) -> tuple[int, int]:
    major, minor, _ = version.split("-", maxsplit=1)[0].split("+", maxsplit=1)[0].split(".", 2)
    return int(major), int(minor)


def abi_skew_problem(abi: AbiSkew, version: str, *, runtime_abi: str) -> str | None:
    """Why ABI ``version`` (a bundle's, an ingress schema's) may not meet ``runtime_abi``, or None."""
    v_major, v_minor = _major_minor(version)
    r_major, r_minor = _major_minor(runtime_abi)
    if abs(v_major - r_major) > abi.max_major_skew:
        return (f"ABI {version} vs runtime {runtime_abi}: major skew {abs(v_major - r_major)} "
                f"(expected at most {abi.max_major_skew})")
    if v_major == r_major and abs(v_minor - r_minor) > abi.max_minor_skew:
        return (f"ABI {version} vs runtime {runtime_abi}: minor skew {abs(v_minor - r_minor)} "
                f"(expected at most {abi.max_minor_skew})")
    return None


def check_skew(
    policy: VersionSkewPolicy, bundle: PipelineBundle, *, runtime_abi: str, today: dt.date
) -> list[str]:
    problems: list[str] = []
    abi = policy.abi
    if not abi.runtime_supported.contains(runtime_abi):
        problems.append(f"runtime ABI {runtime_abi} is outside the supported range "
                        f"(expected {abi.runtime_supported.min} <= v < {abi.runtime_supported.max_exclusive})")
    skew = abi_skew_problem(abi, bundle.compat_window.abi_version, runtime_abi=runtime_abi)
    if skew is not None:
        problems.append(f"bundle {skew}")
    windows = {w.node_type: w.versions for w in policy.node_packages}
    for package in bundle.node_digests:
        window = windows.get(package.node_type)
        if window is None:
            problems.append(f"node package {package.node_type} has no version window in {policy.ref} "
                            "(expected an entry under node_packages)")
        elif not window.contains(package.version):
            problems.append(f"node package {package.node_type}@{package.version} is outside "
                            f"{window.min} <= v < {window.max_exclusive}")
    for dep in policy.deprecations:
        if today.isoformat() > dep.removed_after and _uses(bundle, dep.subject):
            problems.append(f"bundle uses {dep.subject}, removed after {dep.removed_after} "
                            f"(expected {dep.replacement or 'a replacement'})")
    return problems
