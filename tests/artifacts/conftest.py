"""Shared fixtures for artifact tests: the shipped artifacts, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.bundles import read_bundle
from pipelines.models import PipelineBundle
from pipelines.shipped import PIPELINES_DIR
from pipelines.validate import ArtifactSet, validate_paths

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def shipped() -> ArtifactSet:
    artifacts, issues = validate_paths([PIPELINES_DIR])
    assert issues == []
    return artifacts


@pytest.fixture(scope="session")
def bundle_v1() -> PipelineBundle:
    return read_bundle(PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1.json")


@pytest.fixture(scope="session")
def bundle_v1_1() -> PipelineBundle:
    return read_bundle(PIPELINES_DIR / "bundles" / "voice_assistant_bundle_v1_1.json")
