"""Every file generated from the register map YAML is up to date, and the host's copy hashes like the source."""

import pathlib

from t2t.regmap import load_packaged_regmap
from t2t_gateware.regs.generate import REPO_ROOT, generated_files, load_regmap


def test_committed_generated_files_match_a_fresh_generation():
    stale = [path for path, text in generated_files().items()
             if not (REPO_ROOT / path).exists() or (REPO_ROOT / path).read_text() != text]
    assert not stale, f"regenerate with `make generate`: {stale}"


def test_host_copy_has_the_same_hash_as_the_yaml_source():
    assert load_packaged_regmap().hash == load_regmap().hash


def test_register_reference_lists_every_register():
    text = (REPO_ROOT / "docs" / "registers.md").read_text()
    for reg in load_regmap():
        assert f"`{reg.path}`" in text
