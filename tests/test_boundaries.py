"""Attribute boundaries in W (tedigan.editing.boundaries): the least move that reaches a value and keeps the
rest, and their fit on labelled codes (tedigan.training.face_boundaries)."""

import numpy as np
import pytest
import torch

from tedigan.editing.boundaries import AttributeBoundaries, BoundaryError


def _boundaries(d: int = 8, num_ws: int = 4) -> AttributeBoundaries:
    normals = torch.zeros(3, d)
    normals[0, 0] = 2.0  # hair_color=blond reads coordinate 0
    normals[1, 1] = 1.0  # hair_color=black reads coordinate 1
    normals[2, 0], normals[2, 2] = 1.0, 1.0  # keep:age mixes coordinate 0 with coordinate 2
    return AttributeBoundaries(
        names=["hair_color=blond", "hair_color=black", "keep:age"],
        normals=normals,
        offsets=torch.tensor([0.0, 0.0, 30.0]),
        targets=torch.tensor([4.0, 3.0, 30.0]),
        w_avg=torch.zeros(d),
        layers={"hair_color": [1, 2]},
        gains={},
    )


def test_edit_reaches_the_target_and_keeps_the_kept_rows():
    b = _boundaries()
    w = torch.randn(5, 4, 8) * 0.1
    out = b.edit(w, {"hair_color": "blond"})
    s_before, s_after = b.scores(w, [1, 2]), b.scores(out, [1, 2])
    assert torch.allclose(s_after[:, 0], torch.full((5,), 4.0), atol=1e-3)  # reads as blond
    assert torch.allclose(s_after[:, 2], s_before[:, 2], atol=1e-3)  # age kept (conditional move)
    assert torch.allclose(s_after[:, 1], s_before[:, 1], atol=1e-3)  # the other value's row kept too
    assert torch.equal(out[:, [0, 3]], w[:, [0, 3]])  # only the attribute's layers move


def test_a_face_that_already_has_the_value_does_not_move_and_strength_scales():
    b = _boundaries()
    w = torch.zeros(2, 4, 8)
    w[0, :, 0] = 5.0  # already past the target
    out = b.edit(w, {"hair_color": "blond"})
    assert torch.equal(out[0], w[0])
    assert not torch.equal(out[1], w[1])
    half = b.edit(w, {"hair_color": "blond"}, strength=0.5)
    assert b.scores(half, [1, 2])[1, 0] == pytest.approx(2.0, abs=1e-3)
    assert torch.equal(b.edit(w, {"hair_color": "blond"}, strength=0.0), w)
    b.gains["hair_color"] = 2.0
    assert b.scores(b.edit(w, {"hair_color": "blond"}, strength=0.5), [1, 2])[1, 0] == pytest.approx(
        4.0, abs=1e-3
    )


def test_unknown_value_is_refused_and_layers_override():
    b = _boundaries()
    with pytest.raises(BoundaryError, match="red"):
        b.edit(torch.zeros(1, 4, 8), {"hair_color": "red"})
    assert b.covers({"hair_color": "black"}) and not b.covers({"hair_color": "red"}) and not b.covers({})
    out = b.edit(torch.zeros(1, 4, 8), {"hair_color": "black"}, layers=[3])
    assert out[0, :3].abs().sum() == 0 and out[0, 3].abs().sum() > 0
    assert b.layers_of({"hair_color": "black"}, 4) == [1, 2]
    assert b.attribute_values == {"hair_color": ["blond", "black"]}


def test_save_load_round_trip(tmp_path):
    b = _boundaries()
    b.gains["hair_color"] = 1.5
    b.info["rows"] = {"hair_color=blond": {"balanced_accuracy": 0.9}}
    loaded = AttributeBoundaries.load(b.save(tmp_path / "boundaries"))
    assert loaded.names == b.names and loaded.layers == b.layers and loaded.gains == b.gains
    assert loaded.info == b.info
    for name in ("normals", "offsets", "targets", "w_avg"):
        assert torch.equal(getattr(loaded, name), getattr(b, name))
    with pytest.raises(BoundaryError, match="not a boundaries folder"):
        AttributeBoundaries.load(tmp_path / "nothing")


def test_fit_recovers_a_planted_direction():
    from tedigan.training.face_boundaries import fit_boundaries

    rng = np.random.default_rng(0)
    n, d = 1200, 16
    w = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float32)
    truth = np.zeros(d)
    truth[3] = 1.0
    blond = (w.numpy() @ truth + 0.3 * rng.normal(size=n)) > 0.8
    labels = {
        "hair_color": np.where(blond, "blond", "brown"),
        "expression": np.where(w.numpy()[:, 5] > 0, "happy", "neutral"),
        "age": 40 + 10 * w.numpy()[:, 7],
        "female": 1 / (1 + np.exp(-2 * w.numpy()[:, 8])),
        "happy": 1 / (1 + np.exp(-2 * w.numpy()[:, 5])),
    }
    for a in ("baldness", "bangs", "eyewear", "facial_hair", "makeup", "gender", "age_group"):
        labels[a] = np.array([""] * n)
    b = fit_boundaries(w, labels, torch.zeros(d), {}, c=1.0)
    k = b.row("hair_color", "blond")
    normal = b.normals[k].numpy()
    assert normal @ truth / np.linalg.norm(normal) > 0.9
    assert b.info["rows"]["hair_color=blond"]["balanced_accuracy"] > 0.85
    assert b.info["rows"]["keep:age"]["r2"] > 0.9
    assert "eyewear=glasses" not in b.names  # no labelled faces: no row


def _pipe_boundaries(pipe) -> AttributeBoundaries:
    d = pipe.w_dim
    g = torch.Generator().manual_seed(0)
    normals = torch.randn(3, d, generator=g)
    return AttributeBoundaries(
        names=["hair_color=blond", "hair_color=black", "keep:age"],
        normals=normals,
        offsets=torch.zeros(3),
        targets=torch.tensor([25.0, 25.0, 0.0]),
        w_avg=pipe.generator.mapping.w_avg.detach().float().cpu(),
        layers={"hair_color": [4, 5]},
    )


def test_pipeline_boundary_mode_moves_the_attribute_layers_only(tiny_pipe):
    from tedigan.pipeline import PipelineError

    w = tiny_pipe.generator.mapping.w_avg.detach()[None, None].repeat(1, tiny_pipe.num_ws, 1).clone()
    try:
        tiny_pipe.boundaries = b = _pipe_boundaries(tiny_pipe)
        out = tiny_pipe.edit(None, "make the hair blond", latents=w, mode="boundary", fidelity="fast")
        moved = (out.latents - w).abs().sum(-1)[0]
        assert moved[[4, 5]].min() > 0 and moved[[0, 1, 2, 3]].max() == 0
        assert out.layers == [4, 5]
        assert b.scores(out.latents, [4, 5])[0, 0] == pytest.approx(25.0, abs=1e-2)
        with pytest.raises(PipelineError, match="cannot edit hair color = red.*hair color: blond, black"):
            tiny_pipe.edit(None, "red hair", latents=w, mode="boundary", fidelity="fast")
        tiny_pipe.boundaries = None
        with pytest.raises(PipelineError, match="no attribute boundaries"):
            tiny_pipe.edit(None, "make the hair blond", latents=w, mode="boundary", fidelity="fast")
    finally:
        tiny_pipe.boundaries = None


def test_boundaries_travel_with_the_pipeline_folder(tiny_pipe, tmp_path):
    from tedigan.pipeline import TediGANPipeline

    try:
        tiny_pipe.boundaries = b = _pipe_boundaries(tiny_pipe)
        folder = tiny_pipe.save_pretrained(tmp_path / "model")
    finally:
        tiny_pipe.boundaries = None
    loaded = TediGANPipeline.from_pretrained(folder).boundaries
    assert loaded.names == b.names and torch.equal(loaded.normals, b.normals)


def test_value_targets_move_statistics_both_ways_and_keep_the_rest():
    d = 6
    normals = torch.eye(d)[:3].clone()  # stat:hair_L reads coordinate 0, stat:hair_b 1, keep:age 2
    b = AttributeBoundaries(
        names=["hair_color=brown", "hair_color=blond", "stat:hair_L", "stat:hair_b", "keep:age"],
        normals=torch.cat([torch.zeros(2, d), normals]),
        offsets=torch.zeros(5),
        targets=torch.zeros(5),
        w_avg=torch.zeros(d),
        layers={},
        value_targets={
            "hair_color": {
                "rows": ["stat:hair_L", "stat:hair_b"],
                "values": {"brown": [30.0, 6.0], "blond": [55.0, 20.0]},
            }
        },
    )
    w = torch.zeros(2, 3, d)
    w[0, :, 0], w[1, :, 0] = 10.0, 60.0  # a dark and a light source
    w[:, :, 2] = 40.0
    out = b.edit(w, {"hair_color": "brown"})
    s = b.scores(out)
    assert torch.allclose(s[:, 2], torch.tensor([30.0, 30.0]), atol=1e-3)  # up for one, down for the other
    assert torch.allclose(s[:, 3], torch.tensor([6.0, 6.0]), atol=1e-3)
    assert torch.allclose(s[:, 4], torch.tensor([40.0, 40.0]), atol=1e-3)  # age kept
    half = b.scores(b.edit(w, {"hair_color": "blond"}, strength=0.5))
    assert half[0, 2] == pytest.approx(10 + 0.5 * 45, abs=1e-3)


def test_face_directions_refuses_bad_inputs_in_one_line(tmp_path, capsys):
    import json as _json

    from tedigan.commands import main

    def refused(argv, message):
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and message in err[0], err

    refused(
        ["face-directions", "--data", str(tmp_path), "--model", str(tmp_path)], "not a finished face data set"
    )
    for name in ("codes.safetensors", "metadata.jsonl"):
        (tmp_path / name).write_text("")
    (tmp_path / "info.json").write_text(_json.dumps({"mixing_prob": 0.5}))
    refused(["face-directions", "--data", str(tmp_path), "--model", str(tmp_path)], "style mixing")
    (tmp_path / "info.json").write_text(_json.dumps({"mixing_prob": 0}))
    refused(["face-directions", "--data", str(tmp_path), "--model", str(tmp_path)], "not a model folder")


def test_a_value_can_hold_another_value_of_its_own_attribute():
    normals = torch.zeros(2, 4)
    normals[0, 0], normals[0, 1] = 1.0, 1.0  # eyewear=glasses: frames (0) and dark lenses (1)
    normals[1, 1] = 1.0  # eyewear=sunglasses: dark lenses
    kw = dict(
        names=["eyewear=glasses", "eyewear=sunglasses"],
        normals=normals,
        offsets=torch.zeros(2),
        targets=torch.tensor([3.0, 3.0]),
        w_avg=torch.zeros(4),
        layers={},
    )
    w = torch.zeros(3, 2, 4)
    free = AttributeBoundaries(**kw).edit(w, {"eyewear": "glasses"})
    held = AttributeBoundaries(**kw, keep={"eyewear=glasses": ["eyewear=sunglasses"]}).edit(
        w, {"eyewear": "glasses"}
    )
    b = AttributeBoundaries(**kw)
    assert torch.allclose(b.scores(free)[:, 0], torch.full((3,), 3.0)) and (b.scores(free)[:, 1] > 1).all()
    assert torch.allclose(b.scores(held)[:, 0], torch.full((3,), 3.0), atol=1e-4)  # glasses...
    assert torch.allclose(b.scores(held)[:, 1], torch.zeros(3), atol=1e-4)  # ...with clear lenses
    # the held value itself still moves when asked
    dark = AttributeBoundaries(**kw, keep={"eyewear=glasses": ["eyewear=sunglasses"]}).edit(
        w, {"eyewear": "sunglasses"}
    )
    assert torch.allclose(b.scores(dark)[:, 1], torch.full((3,), 3.0), atol=1e-4)


def test_choices_set_by_eye_carry_over_a_refit_with_the_measured_values_beside_them():
    from tedigan.training.face_boundaries import keep_by_eye, sites_by_eye

    b = _boundaries()
    b.gains["hair_color=blond"] = 1.0  # as measured
    choices = {
        "hair_color": {"set": {"layers": [3], "gains": {"hair_color=blond": 2.5}}, "why": "seen on a grid"},
        "hair_color=black": {"set": {"keep": ["hair_color=blond"]}, "why": "seen on a grid"},
    }
    keep_by_eye(b, choices)  # before the sites are measured: the moves the model will make
    assert b.keep == {"hair_color=black": ["hair_color=blond"]} and b.layers["hair_color"] == [1, 2]
    sites_by_eye(b, choices)  # after: the chosen layers and gains replace the measured ones
    assert b.layers["hair_color"] == [3] and b.gains["hair_color=blond"] == 2.5
    recorded = b.info["set_by_eye"]["hair_color"]
    assert recorded["measured"] == {"layers": [1, 2], "gains": {"hair_color=blond": 1.0}}
    assert recorded["why"] == "seen on a grid" and "measured" not in b.info["set_by_eye"]["hair_color=black"]
    out = b.edit(torch.zeros(1, 4, 8), {"hair_color": "blond"})
    assert out[0, :3].abs().sum() == 0 and out[0, 3].abs().sum() > 0
