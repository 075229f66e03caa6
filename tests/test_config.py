"""Typed configs: YAML load, dotted overrides, type and key errors, resolved dump round trip."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from tedigan.config import (
    ClassifierStageConfig,
    ConfigError,
    load_config,
    parse_overrides,
    save_config,
)
from tedigan.typed import from_dict, to_dict


def test_yaml_load_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.01\n  max_steps: 7\ndata:\n  resolution: 32\n")
    cfg = load_config(
        ClassifierStageConfig, path, ["--train.lr=1e-4", "--data.root", "/x", "model.widths=[4, 8]"]
    )
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.max_steps == 7
    assert cfg.data.root == "/x" and cfg.data.resolution == 32
    assert cfg.model.widths == [4, 8]
    assert cfg.train.batch_size == ClassifierStageConfig().train.batch_size  # default kept


def test_resolved_dump_round_trip(tmp_path):
    cfg = load_config(ClassifierStageConfig, None, ["--train.seed=3", "--model.heads={a: [x, y]}"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml", stage="classifier")
    again = load_config(ClassifierStageConfig, path)
    assert to_dict(again) == to_dict(cfg)
    assert again.model.heads == {"a": ["x", "y"]}


@pytest.mark.parametrize(
    "override, message",
    [
        ("--train.lrr=0.1", "did you mean 'lr'"),
        ("--train.max_steps=abc", "expected an integer"),
        ("--train.max_steps=1.5", "expected an integer"),
        ("--train.lr=fast", "expected a number"),
        ("--train.mixed_precision=fp8", "is not one of"),
        ("--data.kind=webdataset", "is not one of"),
        ("--train.max_steps=0", "must be > 0"),
        ("--nosection.key=1", "unknown config key 'nosection'"),
        ("--train.lr", "needs a value"),
    ],
)
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ClassifierStageConfig, None, [override])


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(ClassifierStageConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(ClassifierStageConfig, bad)
    flat = tmp_path / "flat.yaml"
    flat.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(ClassifierStageConfig, flat)


def test_parse_overrides_types():
    got = parse_overrides(["--a=true", "--b=3", "--c=0.5", "--d=hello", "--e=[1, 2]", "--f="])
    assert got == {"a": True, "b": 3, "c": 0.5, "d": "hello", "e": [1, 2], "f": ""}


def test_from_dict_nested_optional_tuple_literal():
    @dataclass
    class Inner:
        size: tuple[int, int] = (1, 2)
        mode: Literal["a", "b"] = "a"

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=Inner)
        name: str | None = None
        ratio: float = 1.0

    cfg = from_dict(Outer, {"inner": {"size": [3, 4], "mode": "b"}, "name": None, "ratio": 2})
    assert cfg.inner.size == (3, 4) and cfg.inner.mode == "b" and cfg.ratio == 2.0
    with pytest.raises(ConfigError, match="expected 2 items"):
        from_dict(Outer, {"inner": {"size": [1, 2, 3]}})
    with pytest.raises(ConfigError, match=r"inner\.mode"):
        from_dict(Outer, {"inner": {"mode": "c"}})
    with pytest.raises(ConfigError, match="expected true/false"):

        @dataclass
        class Flag:
            on: bool = False

        from_dict(Flag, {"on": "yes please"})


def test_train_stage_cli_dry_run_and_errors(capsys):
    from tedigan.commands import entry

    main = entry("train")

    assert main(["--stage", "classifier", "--dry-run", "--train.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "stage: classifier" in out and "lr: 0.5" in out
    assert main(["--stage", "classifier", "--dry-run", "--train.typo=1"]) == 2
    assert "unknown config key 'train.typo'" in capsys.readouterr().err
