"""Prints `go mod edit` flags that copy the non-local replace directives of a go.mod.

`go install` refuses modules with replace directives, so the Pulumi CLI is built inside a small
local module; the replaces that name a version (not a local path) are carried over to it.
Reads `go mod edit -json` output on stdin.
"""

import json
import sys


def replace_flags(module: dict) -> list[str]:
    flags = []
    for replace in module.get("Replace") or []:
        old, new = replace["Old"], replace["New"]
        if not new.get("Version"):
            continue
        old_ref = old["Path"] + (f"@{old['Version']}" if old.get("Version") else "")
        flags.append(f"-replace={old_ref}={new['Path']}@{new['Version']}")
    return flags


if __name__ == "__main__":
    print("\n".join(replace_flags(json.load(sys.stdin))))
