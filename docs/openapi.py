#!/usr/bin/env python3
"""Writes docs/openapi.json from docs/openapi.yaml, the source of the API reference.

The front-end serves the JSON copy at GET /openapi.json, built into its binary, so the
Rust build needs no YAML parser. Run this after every change to the YAML;
`--check` exits 1 when the committed JSON no longer matches (tests/schemathesis.sh
runs it). Needs PyYAML (python3-yaml, or the schemathesis venv, which has it).
"""
import json
import pathlib
import sys

import yaml

DOCS = pathlib.Path(__file__).resolve().parent
SOURCE, TARGET = DOCS / "openapi.yaml", DOCS / "openapi.json"


def main() -> int:
    spec = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    text = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    if sys.argv[1:] == ["--check"]:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
