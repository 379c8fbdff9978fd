"""Generate every artifact derived from the register map YAML.

    python -m t2t_gateware.regs.generate          # rewrite the generated files
    python -m t2t_gateware.regs.generate --check  # exit 1 and name the files that differ

Outputs (all committed): ``sw/t2t/regmap_data.py`` (the host's copy of the resolved map) and
``docs/registers.md`` (the register reference). The gateware bank is elaborated from the same resolved map.
"""

import argparse
import pathlib
import pprint
import sys

import yaml

from t2t.regmap import RegisterMap, parse_regmap

__all__ = ["REGMAP_YAML", "load_regmap", "generated_files", "main"]

REGMAP_YAML = pathlib.Path(__file__).with_name("regmap.yaml")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


def load_regmap(path=REGMAP_YAML):
    """Parse and resolve the YAML register map into a :class:`t2t.regmap.RegisterMap`."""
    with open(path) as file:
        return RegisterMap(parse_regmap(yaml.safe_load(file)))


def render_host_module(regmap):
    body = pprint.pformat(regmap.description, indent=1, width=110, sort_dicts=True)
    return (
        '"""The resolved register map, generated from hw/t2t_gateware/regs/regmap.yaml: do not edit.\n\n'
        'Regenerate with `make generate`.\n"""\n\n'
        f'MAP_HASH = "{regmap.hash}"\n\n'
        f"DESCRIPTION = {body}\n"
    )


def _access_text(reg):
    text = reg.access
    if reg.commit:
        text += f", commit `{reg.commit}`"
    return text


def render_markdown(regmap):
    lines = [
        "# Register reference",
        "",
        "Generated from `hw/t2t_gateware/regs/regmap.yaml` by `make generate`: do not edit.",
        "",
        f"Map `{regmap.name}` version {regmap.version}, magic `{regmap.magic:#010x}`, "
        f"hash `{regmap.hash32:#010x}` (SHA-256 `{regmap.hash}`).",
        "",
        "Registers are 32-bit words at byte addresses. A register wider than 32 bits takes consecutive words,",
        "least significant first: reading word 0 latches the whole value for the later words, and writing the",
        "last word commits the whole value. Registers in a commit group are staged until the group's bit is",
        f"written to `{regmap.commit_register}`. Reads of unmapped addresses answer DECERR.",
        "",
        "Access: `ro` read only, `rw` read/write, `w1c` write 1 to clear, `strobe` write pulses the gateware.",
        "",
    ]
    for block in regmap.blocks:
        lines += [f"## `{block['name']}` at `{block['base']:#06x}`", "", block["doc"], "",
                  "| address | register | width | access | reset | description |",
                  "|---|---|---|---|---|---|"]
        for reg_data in block["registers"]:
            reg = regmap[reg_data["path"]]
            lines.append(f"| `{reg.address:#06x}` | `{reg.path}` | {reg.width} | {_access_text(reg)} | "
                         f"`{reg.reset:#x}` | {reg.doc} |")
        for reg_data in block["registers"]:
            reg = regmap[reg_data["path"]]
            if not reg.fields:
                continue
            lines += ["", f"Fields of `{reg.path}`:", "", "| bits | field | values | description |",
                      "|---|---|---|---|"]
            for field in reg.fields:
                bits = str(field.offset) if field.width == 1 else f"{field.offset + field.width - 1}:{field.offset}"
                values = ", ".join(f"{k}={v}" for k, v in field.enum.items())
                lines.append(f"| {bits} | `{field.name}` | {values} | {field.doc} |")
        lines.append("")
    return "\n".join(lines)


def generated_files(regmap=None):
    """``{path: text}`` of every generated file, paths relative to the repository root."""
    regmap = regmap or load_regmap()
    return {
        "sw/t2t/regmap_data.py": render_host_module(regmap),
        "docs/registers.md": render_markdown(regmap),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file differs")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in generated_files().items():
        path = REPO_ROOT / relative
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {relative}")
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run `make generate`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
