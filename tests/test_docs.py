"""Docs that are checked: the configuration reference is what the config code says."""

from __future__ import annotations

from pathlib import Path

from memlane.config import MemlaneConfig, ProviderSection
from memlane.config_reference import render

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_configuration_reference_is_current() -> None:
    assert (DOCS / "configuration.md").read_text() == render(), "run: python -m memlane.config_reference > docs/configuration.md"


def test_every_config_key_is_in_the_reference() -> None:
    text = (DOCS / "configuration.md").read_text()
    for key, field in MemlaneConfig.model_fields.items():
        assert f"`{key}`" in text
        section = field.annotation
        if section is ProviderSection:  # provider sections are described by provider, above the tables
            continue
        for sub in getattr(section, "model_fields", {}):
            assert f"`{sub}`" in text, f"{key}.{sub}"
