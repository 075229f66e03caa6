"""TediGANPipeline and the edit/generate CLIs on a tiny pipeline built here (16 px generator, tiny encoders,
the real offline MiniLM under a small head): save→load round trip, edits with steps = 0 and > 0, text-to-image
determinism and diversity, sketch/label inputs, and one-line errors with a non-zero exit for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tedigan import cli
from tedigan.commands import entry
from tedigan.data.io import ImageLoadError, to_tensor
from tedigan.models.classifier import AttributeClassifier, ClassifierConfig
from tedigan.pipeline import (
    INDEX_NAME,
    PipelineError,
    PromptNotUnderstood,
    TediGANPipeline,
    change_mask,
)
from tedigan.pipeline.assemble import from_stages

edit_cli, generate_cli = entry("edit"), entry("generate")

RES = 16  # num_ws = 6 (the conftest's tiny pipeline)
HAIR_LAYERS = [4, 5]


@pytest.fixture(scope="module")
def pipe(tiny_pipe) -> TediGANPipeline:
    return tiny_pipe


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    return tiny_model_dir


@pytest.fixture()
def face(tmp_path) -> Path:
    img = Image.new("RGB", (48, 40), (90, 160, 220))  # not square, not the model size
    img.paste((230, 190, 150), (12, 8, 36, 36))
    path = tmp_path / "face.png"
    img.save(path)
    return path


# ------------------------------------------------------------------------------------------- the object


def test_save_load_round_trip_gives_identical_outputs(pipe, model_dir, face):
    index = json.loads((model_dir / INDEX_NAME).read_text())
    assert set(index["components"]) == {
        "generator",
        "encoder",
        "text_encoder",
        "sketch_encoder",
        "label_encoder",
        "classifier",
    }
    assert index["layer_map"] == "layer_map.json" and index["num_ws"] == 6 and index["resolution"] == RES
    again = TediGANPipeline.from_pretrained(model_dir)
    assert again.layer_map.layers == {"hair_color": HAIR_LAYERS}
    a, b = pipe.generate("pink hair", num_images=3, seed=4), again.generate("pink hair", num_images=3, seed=4)
    assert torch.equal(a.latents, b.latents)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.images, b.images))
    e1, e2 = pipe.edit(face, "blond hair"), again.edit(face, "blond hair")
    assert torch.equal(e1.latents, e2.latents) and e1.images[0].tobytes() == e2.images[0].tobytes()
    o1, o2 = pipe.edit(face, "blond hair", steps=2), again.edit(face, "blond hair", steps=2)
    assert torch.equal(o1.latents, o2.latents)
    # the frozen MiniLM is referenced by name, never copied into the folder
    assert (model_dir / "text_encoder" / "model.safetensors").stat().st_size < 1_000_000


def test_fp16_folder_is_smaller_and_close(pipe, model_dir, tmp_path):
    half = pipe.save_pretrained(tmp_path / "half", dtype=torch.float16)
    size = lambda d: sum(p.stat().st_size for p in d.rglob("*.safetensors"))  # noqa: E731
    assert size(half) < 0.6 * size(model_dir)
    again = TediGANPipeline.from_pretrained(half)
    assert next(again.generator.parameters()).dtype == torch.float32  # loading casts back
    a, b = pipe.generate("red hair", num_images=2, seed=1), again.generate("red hair", num_images=2, seed=1)
    assert (a.latents - b.latents).abs().max() < 1e-2


def test_edit_encoder_only_takes_exactly_the_prompt_layers(pipe, face):
    out = pipe.edit(face, "she has blond hair")
    assert out.layers == HAIR_LAYERS and out.losses == []
    assert out.images[0].size == (RES, RES) and out.source_images[0].size == (RES, RES)
    keep = [i for i in range(pipe.num_ws) if i not in HAIR_LAYERS]
    assert torch.equal(out.latents[:, keep], out.source_latents[:, keep])
    assert torch.equal(out.latents[:, HAIR_LAYERS], out.text_latents[:, HAIR_LAYERS])
    half = pipe.edit(face, "she has blond hair", strength=0.5)
    mid = (out.source_latents + out.text_latents) / 2
    assert torch.allclose(half.latents[:, HAIR_LAYERS], mid[:, HAIR_LAYERS], atol=1e-6)
    manual = pipe.edit(face, "she has blond hair", layers=[0])
    assert manual.layers == [0] and torch.equal(manual.latents[:, 1:], out.source_latents[:, 1:])


def test_edit_with_optimisation_runs_and_is_deterministic(pipe, face):
    a = pipe.edit(face, "blond hair", steps=3, seed=2)
    b = pipe.edit(face, "blond hair", steps=3, seed=2)
    assert len(a.losses) == 3 and {"pixel", "lpips", "encoder", "total"} <= set(a.losses[0])
    assert torch.equal(a.latents, b.latents)
    assert not torch.equal(a.latents, pipe.edit(face, "blond hair").latents)  # the code moved
    with pytest.raises(PipelineError, match="steps"):
        pipe.edit(face, "blond hair", steps=-1)
    from tedigan.editing.optimization import OptimizationConfig

    by_config = pipe.edit(face, "blond hair", optimization=OptimizationConfig(steps=2, lpips_weight=0.0))
    assert len(by_config.losses) == 2 and "lpips" not in by_config.losses[0]  # steps and weights from it
    with pytest.raises(PipelineError, match="strength"):
        pipe.edit(face, "blond hair", strength=float("nan"))


def test_generate_is_seeded_diverse_and_shares_the_text_layers(pipe):
    a = pipe.generate("pink hair", num_images=4, seed=0)
    assert len(a.images) == 4 and a.latents.shape == (4, 6, 16) and a.layers == HAIR_LAYERS
    assert torch.equal(a.latents, pipe.generate("pink hair", num_images=4, seed=0).latents)
    assert not torch.equal(a.latents, pipe.generate("pink hair", num_images=4, seed=1).latents)
    assert torch.equal(a.latents[:, HAIR_LAYERS], a.text_latents[:, HAIR_LAYERS].expand(4, -1, -1))
    assert not torch.equal(a.latents[0, 0], a.latents[1, 0])  # other layers come from random codes
    # a prompt the vocabulary cannot read is refused, never guessed; with explicit layers it runs
    with pytest.raises(PromptNotUnderstood, match="does not understand"):
        pipe.generate("zzz qqq", num_images=1)
    assert pipe.generate("zzz qqq", num_images=1, layers=[0, 1]).layers == [0, 1]
    # an attribute the layer map has no layers for: the layers the text code moves most
    assert len(pipe.generate("a fedora", num_images=1).layers) == 4
    refined = pipe.generate("pink hair", num_images=2, seed=0, steps=2)
    assert len(refined.losses) == 2 and refined.latents.shape == (2, 6, 16)


def test_sketch_and_label_inputs(pipe, tmp_path):
    sketch = Image.new("L", (32, 32), 255)
    only = pipe.generate(sketch=sketch)
    assert len(only.images) == 1 and only.layers == [] and only.text_latents is None
    mixed = pipe.generate("red hair", sketch=[sketch, sketch])
    assert len(mixed.images) == 2 and mixed.layers == HAIR_LAYERS
    assert torch.allclose(mixed.latents[:, :4], only.latents[:, :4].expand(2, -1, -1), atol=1e-5)
    label = Image.new("L", (RES, RES), 0)
    label.paste(2, (4, 4, 12, 12))
    label.save(tmp_path / "label.png")
    assert len(pipe.generate("glasses", label=tmp_path / "label.png").images) == 1
    big = torch.zeros(40, 64, dtype=torch.long)
    assert len(pipe.generate(label=big).images) == 1  # any size: centre-cropped, nearest-resized
    with pytest.raises(PipelineError, match="need a prompt"):
        pipe.generate(sketch=sketch, steps=2)
    with pytest.raises(PipelineError, match="either"):
        pipe.generate("x", sketch=sketch, label=label)


def test_invert_any_image_mode(pipe, tmp_path):
    Image.new("RGBA", (20, 33), (10, 200, 30, 128)).save(tmp_path / "rgba.png")
    Image.new("L", (64, 64), 100).save(tmp_path / "grey.png")
    out = pipe.invert([tmp_path / "rgba.png", tmp_path / "grey.png", torch.zeros(3, 40, 40)])
    assert out.latents.shape == (3, 6, 16) and len(out.images) == 3
    wide = torch.full((3, 16, 48), -1.0)
    wide[:, :, 16:32] = 1.0  # a white centre square between black side bands: the crop keeps only it
    assert pipe.invert(wide).source_images[0].getextrema() == ((255, 255),) * 3


def test_bad_inputs_raise_clear_errors(pipe, tmp_path, face):
    with pytest.raises(ValueError, match="empty text"):
        pipe.edit(face, "   ")
    with pytest.raises(ValueError, match="empty text"):
        pipe.generate("")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageLoadError, match="bad.png"):
        pipe.edit(tmp_path / "bad.png", "blond hair")
    with pytest.raises(PipelineError, match="does not exist"):
        TediGANPipeline.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(PipelineError, match=INDEX_NAME):
        TediGANPipeline.from_pretrained(tmp_path)
    with pytest.raises(PipelineError, match="layers must be"):
        pipe.edit(face, "blond hair", layers=[9])


def test_change_mask():
    a = torch.zeros(1, 3, 8, 8)
    b = a.clone()
    assert torch.equal(change_mask(a, b), torch.ones(1, 1, 8, 8))
    b[:, :, 3:5, 3:5] = 1.0
    m = change_mask(a, b, grow=1)
    assert m[0, 0, 3:5, 3:5].max() == 0 and m[0, 0, 2, 2] == 0 and m[0, 0, 0, 0] == 1


def test_from_stages_reads_a_train_all_folder(pipe, tmp_path):
    out = tmp_path / "run"
    pipe.generator.save_pretrained(out / "generator" / "generator")
    pipe.encoder.save_pretrained(out / "inversion" / "encoder")
    pipe.text_encoder.save_pretrained(out / "text" / "text_encoder")
    pipe.layer_map.save(out / "layer_analysis", plot=False)
    built = from_stages(out)
    assert set(built.components()) == {"generator", "encoder", "text_encoder"}
    assert built.layer_map.layers == pipe.layer_map.layers
    assert (
        entry("assemble")(["--stages", str(out), "--out", str(tmp_path / "p"), "--edit-mode", "delta"]) == 0
    )
    assert TediGANPipeline.from_pretrained(tmp_path / "p").defaults.edit_mode == "delta"
    with pytest.raises(PipelineError, match="run the generator stage"):
        from_stages(tmp_path / "empty")
    pipe.generator.save_pretrained(tmp_path / "half" / "generator" / "generator")
    with pytest.raises(PipelineError, match="run the inversion stage"):
        from_stages(tmp_path / "half")


# ------------------------------------------------------------------------------------------------ CLIs


def test_edit_cli_writes_the_edit_and_a_grid(model_dir, face, tmp_path, capsys):
    out = tmp_path / "sub" / "edited.png"
    rc = edit_cli(
        [
            "--image",
            str(face),
            "--text",
            "blond hair",
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--grid",
            "--steps",
            "2",
            "--scale",
            "2",
            "--json",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["layers"] == HAIR_LAYERS and summary["steps"] == 2
    assert Image.open(out).size == (2 * RES, 2 * RES)
    grid = Image.open(tmp_path / "sub" / "edited_grid.png")
    assert grid.size == (3 * 2 * RES + 4, 2 * RES)


def test_generate_cli_writes_images(model_dir, tmp_path, capsys):
    rc = generate_cli(
        [
            "--text",
            "a smiling man",
            "-n",
            "3",
            "--out",
            str(tmp_path / "g"),
            "--model",
            str(model_dir),
            "--scale",
            "1",
        ]
    )
    assert rc == 0 and "3 image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["000.png", "001.png", "002.png", "grid.png"]
    Image.new("L", (RES, RES), 255).save(tmp_path / "s.png")
    assert (
        generate_cli(
            ["--sketch", str(tmp_path / "s.png"), "--out", str(tmp_path / "s"), "--model", str(model_dir)]
        )
        == 0
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--text", "  "], "empty text"),
        (["--image", "bad.png"], "bad.png"),
        (["--model", "missing_dir"], "does not exist"),
        (["--image", "face.png", "--out", "face.png"], "is the input image"),
        (["--layers", "1,x"], "--layers"),
        (["--out", "result"], "image extension"),
    ],
)
def test_edit_cli_errors_are_one_line_and_nonzero(
    model_dir, face, tmp_path, capsys, monkeypatch, argv, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    args = {"--image": str(face), "--text": "blond hair", "--model": str(model_dir)}
    for flag, value in zip(argv[::2], argv[1::2]):
        args[flag] = value
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = edit_cli([x for kv in args.items() for x in kv])
    err = capsys.readouterr().err.strip()
    assert (
        rc == 2 and len(err.splitlines()) == 1 and message in err and err.startswith("tedigan edit: error:")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, nothing lost


def test_generate_cli_errors(model_dir, tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"GIF89a broken")
    cases = [
        (["--model", str(model_dir)], "empty text"),
        (["--text", "hat", "--model", str(tmp_path / "nope")], "does not exist"),
        (["--sketch", str(tmp_path / "bad.png"), "--model", str(model_dir)], "bad.png"),
        (["--sketch", "a.png", "--label", "b.png", "--model", str(model_dir)], "either"),
    ]
    for argv, message in cases:
        assert generate_cli([*argv, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("tedigan generate: error:") and message in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_clis_run_as_modules_and_teach_with_help(model_dir, face, tmp_path):
    for module in ("tedigan.edit", "tedigan.generate"):
        helped = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert helped.returncode == 0 and "examples:" in helped.stdout and "--text" in helped.stdout
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tedigan.edit",
            "--image",
            str(face),
            "--text",
            "red hair",
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "e.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "e.png").is_file()
    empty = subprocess.run(
        [sys.executable, "-m", "tedigan.edit", "--image", str(face), "--text", "", "--model", str(model_dir)],
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 2 and empty.stderr.strip().count("\n") == 0 and "empty text" in empty.stderr


def test_parse_layers():
    assert cli.parse_layers(None) is None and cli.parse_layers("3, 1,2") == [3, 1, 2]
    with pytest.raises(ValueError):
        cli.parse_layers("a")


# ------------------------------------------------------------------------------------ edit benchmark


def test_benchmark_phrasings_name_their_edit():
    from tedigan.data.avatars import parse_prompt
    from tedigan.evaluation.edit_benchmark import EDITS, T2I_PROMPTS

    for attribute, value, phrasings in EDITS:
        assert len(phrasings) >= 2
        for p in phrasings:
            assert parse_prompt(p).get(attribute) == value, p
    assert all(parse_prompt(p) for p in T2I_PROMPTS)


@pytest.mark.slow
def test_edit_benchmark_runs_end_to_end(pipe, tmp_path):
    from tedigan.data.avatars import ATTRIBUTES
    from tedigan.evaluation.edit_benchmark import BenchmarkConfig, run_benchmark
    from tedigan.pipeline import TediGANPipeline

    torch.manual_seed(0)
    judge = AttributeClassifier(
        ClassifierConfig(resolution=RES, widths=[4, 8], heads={a: list(v) for a, v in ATTRIBUTES.items()})
    )
    bench_pipe = TediGANPipeline(
        pipe.generator,
        pipe.encoder,
        pipe.text_encoder,
        classifier=judge,
        layer_map=pipe.layer_map,
        vocabulary=pipe.vocabulary,
    )
    cfg = BenchmarkConfig(num_sources=3, num_optimized=2, steps=1, samples_per_prompt=2, grid_sources=2)
    s = run_benchmark(bench_pipe, tmp_path, cfg)
    for mode in ("encoder_only", "optimized", "encoder_only_same_sources"):
        r = s["edits"][mode]
        assert 0 <= r["target_accuracy"] <= 1 and 0 <= r["preservation"] <= 1 and r["lpips_to_target"] > 0
    assert (
        s["edits"]["optimized"]["num_edits"] < s["edits"]["encoder_only"]["num_edits"] == s["num_edit_jobs"]
    )
    assert 0 <= s["text_to_image"]["attribute_accuracy"] <= 1 and s["text_to_image"]["diversity"] > 0
    assert s["inversion"]["lpips"] > 0
    assert json.loads((tmp_path / "benchmark.json").read_text())["num_sources"] == 3
    for name in ("report.md", "edit_grid.png", "t2i_grid.png", "target_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| encoder only |" in (tmp_path / "report.md").read_text() and s["edit_mode"] == "mix"
    # encoder-only runs (no optimised edits) and one sample per prompt still report, in the asked edit mode
    modes, edit = [], bench_pipe.edit
    bench_pipe.edit = lambda *a, **k: modes.append(k.get("mode")) or edit(*a, **k)
    plain = run_benchmark(
        bench_pipe,
        tmp_path / "plain",
        BenchmarkConfig(num_sources=2, steps=0, samples_per_prompt=1, mode="delta"),
    )
    assert "optimized" not in plain["edits"] and plain["text_to_image"]["diversity"] == 0.0
    assert set(modes) == {"delta"}
    assert plain["edit_mode"] == "delta" and "delta mode" in (tmp_path / "plain" / "report.md").read_text()
    assert (tmp_path / "plain" / "report.md").is_file() and (tmp_path / "plain" / "edit_grid.png").is_file()


def test_delta_mode_moves_the_selected_layers_along_the_text_direction(pipe, face):
    d = pipe.text_direction("red hair")
    assert d.shape == (1, pipe.num_ws, pipe.generator.w_dim) and d.abs().sum() > 0
    out = pipe.edit(face, "red hair", mode="delta")
    moved = (out.latents - out.source_latents).abs().sum(dim=(0, 2))
    assert set(torch.nonzero(moved).flatten().tolist()) <= set(out.layers)
    assert torch.allclose(
        out.latents[:, out.layers] - out.source_latents[:, out.layers], d[:, out.layers], atol=1e-5
    )
    with pytest.raises(PipelineError, match="mode must be one of"):
        pipe.edit(face, "red hair", mode="sideways")


def test_delta_mode_follows_the_prompts_own_text_code(pipe, face):
    # the direction runs from the other values' phrases to the prompt's code: two phrasings of one value differ
    a, b = pipe.edit(face, "red hair", mode="delta"), pipe.edit(face, "make the hair ginger", mode="delta")
    assert not torch.allclose(a.latents, b.latents)
    x, y = torch.randn(2, 1, pipe.num_ws, pipe.generator.w_dim, generator=torch.Generator().manual_seed(0))
    moved = pipe.text_direction("red hair", w_text=x) - pipe.text_direction("red hair", w_text=y)
    torch.testing.assert_close(moved, x - y)
    # a negation does not describe the result (sentence encoders read "remove" close to what it removes):
    # the asked value's phrases stand in for the prompt's code
    torch.testing.assert_close(
        pipe.text_direction("remove the glasses", w_text=x),
        pipe.text_direction("remove the glasses", w_text=y),
    )


def test_prototypes_are_value_means_and_the_shift_moves_between_them(tmp_path):
    from tedigan.data import builtin_vocabulary
    from tedigan.editing.prototypes import shift_to_prototypes
    from tedigan.models.prototypes import Prototypes, value_prototypes

    vocab = builtin_vocabulary("avatars")
    captions = ["a person with red hair", "red-haired avatar", "someone with blond hair", "a smiling face"]
    codes = torch.arange(4 * 3 * 2, dtype=torch.float32).view(4, 3, 2)
    protos = value_prototypes(codes, captions, vocab, gain=1.0)
    red, blond = protos.codes["hair_color"]["red"], protos.codes["hair_color"]["blond"]
    assert torch.equal(red, codes[:2].mean(0)) and torch.equal(blond, codes[2])
    assert protos.counts["hair_color"] == {"blond": 1, "red": 2}
    assert "mouth" not in protos.codes  # one value alone gives no direction
    again = Prototypes.load(protos.save(tmp_path))
    assert torch.equal(again.codes["hair_color"]["red"], red) and again.counts == protos.counts

    w = torch.stack([red, blond])  # one image at each prototype
    moved = shift_to_prototypes(w, protos, {"hair_color": "blond"}, layers=[0, 1, 2])
    assert torch.allclose(moved[0], blond) and torch.equal(moved[1], blond)  # the blond one stays
    part = shift_to_prototypes(w, protos, {"hair_color": "blond"}, layers=[1])
    assert torch.equal(part[0, [0, 2]], red[[0, 2]]) and torch.allclose(part[0, 1], blond[1])
    half = shift_to_prototypes(w[:1], protos, {"hair_color": "blond"}, layers=[0, 1, 2], strength=0.5)
    assert torch.allclose(half[0], (red + blond) / 2)


def test_prototype_mode_edits_and_round_trips(pipe, face, tmp_path):
    from tedigan.models.prototypes import Prototypes

    g = torch.Generator().manual_seed(0)
    shape = (pipe.num_ws, pipe.generator.w_dim)
    protos = Prototypes(
        {"hair_color": {v: torch.randn(shape, generator=g) for v in ("black", "blond", "red")}}, gain=2.0
    )
    with pytest.raises(PipelineError, match="no value prototypes"):
        pipe.edit(face, "red hair", mode="prototype")
    pipe.prototypes = protos
    try:
        out = pipe.edit(face, "red hair", mode="prototype")
        assert out.layers == list(range(pipe.num_ws)) and not torch.equal(out.latents, out.source_latents)
        some = pipe.edit(face, "red hair", mode="prototype", layers=[1])
        moved = (some.latents - some.source_latents).abs().sum(dim=(0, 2))
        assert set(torch.nonzero(moved).flatten().tolist()) <= {1}
        with pytest.raises(PipelineError, match="no prototype for facial hair"):
            pipe.edit(face, "add a beard", mode="prototype")
        pipe.defaults.edit_mode = "prototype"
        loaded = TediGANPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "p"))
        assert torch.equal(loaded.prototypes.codes["hair_color"]["red"], protos.codes["hair_color"]["red"])
        assert torch.allclose(
            loaded.edit(face, "red hair").latents, out.latents, atol=1e-5
        )  # the model's mode
    finally:
        pipe.prototypes = None
        pipe.defaults.edit_mode = "mix"


def test_invert_with_optimisation_gets_closer_to_the_image(pipe, face):
    enc = pipe.invert(face)
    opt = pipe.invert(face, steps=8, seed=0)
    assert torch.equal(opt.source_latents, enc.latents) and len(opt.losses) == 8
    x = to_tensor(enc.source_images[0], pipe.resolution)
    err = [(to_tensor(o.images[0], pipe.resolution) - x).abs().mean() for o in (enc, opt)]
    assert err[1] < err[0], err
