#!/usr/bin/env python3
"""Validate lmtphook payload documents against the JSON Schema.

    validate.py SCHEMA.json FILE_OR_DIR...

Prints one line per invalid document and a summary; exit status 1 if any is invalid.
Needs the `jsonschema` package (Debian: python3-jsonschema).
"""
import json, os, sys
import jsonschema

schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
paths = []
for arg in sys.argv[2:]:
    if os.path.isdir(arg):
        paths += [os.path.join(arg, n) for n in sorted(os.listdir(arg)) if n.endswith(".json")]
    else:
        paths.append(arg)
bad = 0
for path in paths:
    try:
        document = json.load(open(path, encoding="utf-8"))
    except Exception as error:
        bad += 1
        print(f"{path}: not JSON: {error}")
        continue
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        bad += 1
        print(f"{path}: " + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:3]))
print(f"validated {len(paths)} documents, {bad} invalid")
sys.exit(1 if bad else 0)
