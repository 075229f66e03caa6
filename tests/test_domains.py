"""tedigan.domains: the one table of domains and named networks, and the places that read it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tedigan.domains import DEFAULT_MODEL, DOMAINS, FACE_JUDGES, NAMED_GENERATORS, SHIPPED_MODELS

ROOT = Path(__file__).resolve().parent.parent


def test_domains_imports_nothing_of_tedigan():
    code = "import sys, tedigan.domains; print(sorted(m for m in sys.modules if m.startswith('tedigan')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tedigan', 'tedigan.domains']"


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_entry_names_something_that_exists(name):
    from tedigan.data import DATASET_KINDS, builtin_vocabulary

    d = DOMAINS[name]
    assert d.name == name and (d.model_dir / "model_index.json").is_file()
    assert d.data_kind in DATASET_KINDS
    assert builtin_vocabulary(d.vocabulary).domain == name
    assert d.generator is None or d.generator in NAMED_GENERATORS
    assert {d.judge, d.benchmark_judge} - {None} <= set(FACE_JUDGES)
    assert importlib.util.find_spec(d.benchmark) is not None
    assert (ROOT / "configs" / f"inversion_{d.preset}.yaml").is_file()
    index = json.loads((d.model_dir / "model_index.json").read_text())
    if d.generator is None:  # trained and stored in the folder
        assert isinstance(index["components"]["generator"], str)
    else:  # named, never stored
        assert index["components"]["generator"]["package"] == d.generator


def test_the_face_generator_is_not_the_faces_pipeline():
    assert DEFAULT_MODEL in SHIPPED_MODELS
    assert not set(NAMED_GENERATORS) & set(SHIPPED_MODELS)
    assert not set(FACE_JUDGES) & (set(NAMED_GENERATORS) | set(SHIPPED_MODELS))
