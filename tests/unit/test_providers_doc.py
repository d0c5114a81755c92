"""docs/providers.md cannot rot: every YAML block is a model entry the real config parser accepts,
and every preset has its own section with at least one snippet for it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimm_gateway.config import GatewayConfig, parse_config
from aimm_gateway.presets import PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
_SECTION = re.compile(r"^###? `([a-z_]+)`\s*$", re.MULTILINE)
_YAML = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def sections() -> dict[str, str]:
    """Preset name -> the text of its `### \\`name\\`` section (up to the next heading)."""
    text = DOC.read_text()
    heads = list(_SECTION.finditer(text))
    out: dict[str, str] = {}
    for k, head in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        body = text[head.end() : end]
        out[head.group(1)] = body.split("\n## ", 1)[0]
    return out


def parse_snippet(snippet: str) -> GatewayConfig:
    data: Any = yaml.safe_load(snippet)
    models = data if isinstance(data, list) else [data]
    return parse_config({"models": models}, source="docs/providers.md")


def test_every_yaml_block_is_a_valid_model_list() -> None:
    blocks = _YAML.findall(DOC.read_text())
    assert len(blocks) >= len(PRESETS)
    for block in blocks:
        config = parse_snippet(block)  # raises ConfigError naming the field if the doc is wrong
        assert config.models


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_has_a_section_with_a_working_snippet(preset: str) -> None:
    section = sections().get(preset)
    assert section is not None, f"docs/providers.md has no '### `{preset}`' section"
    blocks = _YAML.findall(section)
    assert blocks, f"the {preset} section has no YAML snippet"
    for block in blocks:
        models = parse_snippet(block).models
        assert {m.provider for m in models} == {preset}, (
            f"a snippet in the {preset} section configures another provider"
        )
    note = _YAML.sub("", section).strip()
    assert len(note) > 40, f"the {preset} section needs a note, not just a snippet"


def test_doc_lists_only_real_presets() -> None:
    assert set(sections()) == set(PRESETS)
