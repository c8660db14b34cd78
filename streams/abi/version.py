"""The version of RSPP's Event ABI (the Avro schemas under ``avro/``).

Bumped on every schema change: minor for compatible additions, major for a
break that the compat gate allowed on purpose. Bundles record it; the
version-skew policy in ``pipelines/compat/`` decides which skews may run.
"""

from __future__ import annotations

__all__ = ["ABI_VERSION"]

ABI_VERSION = "1.0.0"
