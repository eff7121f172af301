"""docs/configuration.md is generated from the settings models and may not drift from them."""

from __future__ import annotations

import yaml

from archive.settings import SettingsFile
from crawler.configdoc import DOC, main, render
from tests.test_settings import REPO


def test_the_configuration_reference_is_up_to_date() -> None:
    assert main(["--check"]) == 0, "docs/configuration.md is stale: run python -m crawler.configdoc"
    assert DOC.read_text(encoding="utf-8") == render()


def test_every_setting_is_in_the_reference_and_in_the_shipped_settings_file() -> None:
    doc = DOC.read_text(encoding="utf-8")
    shipped = yaml.safe_load((REPO / "config" / "settings.yaml").read_text(encoding="utf-8"))
    for section, model in SettingsFile.model_fields.items():
        annotation = model.annotation
        fields = getattr(annotation, "model_fields", None)
        if fields is None:
            assert f"| `{section}` |" in doc and section in shipped
            continue
        for name in fields:
            assert f"| `{section}.{name}` |" in doc, f"{section}.{name} not in the reference"
            assert name in (shipped.get(section) or {}), f"{section}.{name} not in settings.yaml"


def test_the_shipped_revisit_policy_is_the_default() -> None:
    from archive.settings import load_settings

    shipped = load_settings({"UFARCHIVE_CONFIG": str(REPO / "config")})
    defaults = load_settings({"UFARCHIVE_CONFIG": str(REPO / "no-such-config")})
    assert shipped.revisit == defaults.revisit
