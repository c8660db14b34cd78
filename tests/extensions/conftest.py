"""Helpers shared by the extension tests: manifests for the shipped bad nodes."""

from __future__ import annotations

from pipelines.models.extension import ExtensionManifest
from streams.extensions.digest import module_digest

BUDGET_MS = 500
MARGIN_S = 0.5  # budget + this bounds every failure, worker replacement included


def bad_manifest(module: str, *, node_type: str | None = None, digest: str | None = None,
                 package: str = "tests.extensions.bad_nodes", trust_level: str = "untrusted",
                 capabilities: tuple[str, ...] = ()) -> ExtensionManifest:
    """An external-node manifest pinning ``package.module`` by its source digest."""
    node_type = node_type or f"ext.bad_{module}"
    target = f"{package}.{module}"
    return ExtensionManifest.model_validate({
        "apiVersion": "rspp.dev/v1", "kind": "ExtensionManifest",
        "metadata": {"name": f"bad_{module}", "version": "1.0.0"},
        "type": "external_node", "api_version": "rspp.node/v1", "trust_level": trust_level,
        "capabilities": list(capabilities),
        "node": {"node_type": node_type, "io": {"input": "text/transcript", "output": "text/transcript"},
                 "providers": ["bad"], "streaming": False, "cancel": "kill", "state": "stateless",
                 "deterministic": True},
        "package": {"node_type": node_type, "impl_ref": f"module:{target}:build", "version": "1.0.0",
                    "digest": digest or module_digest(target), "execution_mode": "external"},
        "resource_limits": {"cpu_millis": 1000, "memory_mb": 64, "timeout_ms": BUDGET_MS,
                            "max_concurrency": 2},
    })
