"""Write the AIGateway spec schema into the chart's values.schema.json (`gateway.spec`).

The chart passes `gateway.spec` through to its AIGateway unchanged, so its values are checked
against the CRD's own schema (crds/aimm.io_aigateways.yaml), as draft-07 JSON Schema and closed:
an object that lists its properties accepts no others (the API server would prune them silently).
Run by `make crds`; tests/install/test_chart.py fails when the two drift apart.

    python -P hack/chart_schema.py [--check]
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "crds" / "aimm.io_aigateways.yaml"
SCHEMA = REPO / "charts" / "ai-multimodel" / "values.schema.json"


def json_schema(node: Any) -> Any:
    """An OpenAPI v3 (CRD) schema as draft-07 JSON Schema, closed against unknown properties."""
    if isinstance(node, dict):
        out = {k: json_schema(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        # OpenAPI (like draft-04) flags a bound as exclusive; draft-06+ gives the bound itself.
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(out.get(flag), bool) and out.pop(flag):
                out[flag] = out.pop(bound)
        return out
    if isinstance(node, list):
        return [json_schema(v) for v in node]
    return node


def gateway_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    spec = copy.deepcopy(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    spec.pop("default", None)  # the chart passes what the user gave; the API server defaults the rest
    return json_schema(spec)


def render() -> str:
    schema = json.loads(SCHEMA.read_text())
    schema["definitions"]["aigatewaySpec"] = gateway_spec_schema()
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SCHEMA.read_text() != text:
            print(f"{SCHEMA.relative_to(REPO)} is out of date: run `make crds`", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
