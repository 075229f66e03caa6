"""The real-photo benchmark (``tedigan face-benchmark --photos``) and the calibration of its same-person threshold,
on stub judges, stub pipelines and the tiny pipeline: no face weights needed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tedigan.commands import main
from tedigan.data.align import Face
from tedigan.evaluation import identity_calibration as ic
from tedigan.evaluation import photo_benchmark as pb
from tedigan.models.judge import Judge, Judgement

EMOTIONS = ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]


class StubJudge(Judge):
    """Reads 'happy' on bright images, 'blond' on red ones; the embedding is the per-channel mean × 10."""

    attribute_values = {
        "expression": EMOTIONS,
        "gender": ["male", "female"],
        "hair_color": ["black", "blond"],
    }
    embedding_dim = 3
    same_person_threshold = 10.0

    def judge(self, images: torch.Tensor) -> Judgement:
        mean = images.mean(dim=(2, 3))
        bright = (mean.mean(dim=1) > 0).float()
        expr = torch.full((len(images), 7), 0.01)
        expr[:, 3] += bright
        expr[:, 6] += 1 - bright
        red = (mean[:, 0] > mean[:, 2]).float()
        return Judgement(
            probs={
                "expression": expr / expr.sum(dim=1, keepdim=True),
                "gender": torch.tensor([[0.6, 0.4]]).expand(len(images), 2),
                "hair_color": torch.stack([1 - red, red], dim=1),
            },
            embedding=mean * 10,
        )


class StubIdentity(torch.nn.Module):
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.embed(a) - self.embed(b)).norm(dim=-1)


def stub_lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean(dim=(1, 2, 3))


def _photo(colour=(200, 170, 150), size=(120, 100), bg=(40, 60, 90)) -> Image.Image:
    img = Image.new("RGB", size, bg)
    img.paste(colour, (30, 20, 90, 90))
    return img


LANDMARKS = np.array([[48.0, 45.0], [72.0, 45.0], [60.0, 58.0], [50.0, 72.0], [70.0, 72.0]])


def _detect(img: Image.Image) -> list[Face]:
    """A stub detector: one face at LANDMARKS; in a wide photo a second one to its right."""
    faces = [Face.from_landmarks(LANDMARKS, img.size, prob=1.0)]
    if img.width > 200:
        faces.append(Face.from_landmarks(LANDMARKS + [120.0, 0.0], img.size, prob=1.0))
        faces.append(
            Face.from_landmarks(LANDMARKS + [60.0, 0.0], img.size, prob=0.5)
        )  # not sure: not counted
    return faces


# ------------------------------------------------------------------------------------------ calibration


def test_choose_threshold_takes_the_midpoint_and_refuses_overlap():
    assert ic.choose_threshold([1.0, 5.8, 7.0], [9.5, 13.0]) == 8.2
    assert ic.choose_threshold([2.0], [3.0], decimals=2) == 2.5
    with pytest.raises(ValueError, match="overlap"):
        ic.choose_threshold([1.0, 10.0], [9.5])
    with pytest.raises(ValueError, match="needs"):
        ic.choose_threshold([], [9.5])


def test_distance_summary():
    s = ic.distance_summary([3.0, 1.0, 2.0, 4.0, 5.0])
    assert s == {"n": 5, "min": 1.0, "p10": 1.4, "median": 3.0, "p90": 4.6, "max": 5.0}
    assert ic.distance_summary([]) == {"n": 0}


def test_second_views_are_the_photo_seen_again_without_a_detector():
    img = _photo()
    views = ic.second_views(img, _detect(img)[0], size=32)
    assert list(views) == ["photo", *ic.VIEWS]
    assert all(v.shape == (3, 32, 32) and v.min() >= -1 and v.max() <= 1 for v in views.values())
    assert torch.equal(views["flip"], views["photo"].flip(-1))
    assert torch.allclose(views["grey"][0], views["grey"][1]) and not torch.equal(
        views["photo"], views["grey"]
    )
    assert not torch.equal(views["landmarks_a"], views["photo"])  # another alignment
    assert ic.second_views(img, _detect(img)[0], size=32)["landmarks_a"].equal(views["landmarks_a"])  # seeded


def test_calibrate_measures_every_kind_and_chooses_between_them():
    photos = {"a": _photo((220, 200, 180)), "b": _photo((120, 40, 30)), "c": _photo((60, 160, 70))}
    group = {"g": Image.new("RGB", (260, 100), (30, 30, 30))}
    group["g"].paste((250, 250, 250), (30, 20, 90, 90))  # two faces: a bright one and a dark one
    one = {"t1": _photo((200, 170, 150), (40, 40)), "t2": _photo((190, 160, 150), (40, 40))}
    r = ic.calibrate(StubJudge(), photos, group, one, identity=StubIdentity(), detect=_detect, size=32)
    f = r["faceres"]
    assert set(f["different"]["distances"]) == {"a|b", "a|c", "b|c", "g#0|g#1"}  # the unsure face not counted
    assert len(f["views"]["distances"]) == 3 * len(ic.VIEWS) and set(f["views"]["max_per_view"]) == set(
        ic.VIEWS
    )
    assert list(f["one_person"]["distances"]) == ["t1|t2"]
    same, diff = max(f["views"]["distances"].values()), min(f["different"]["distances"].values())
    assert same < r["threshold"] < diff
    assert set(r["dlib"]) == {"different", "views", "one_person"} and "views" in r["rule"]


def test_the_shipped_threshold_lies_between_its_evidence_and_rejects_the_known_impostor():
    stored = json.loads(ic.THRESHOLD_FILE.read_text())
    t = ic.load_faceres_threshold()
    f = stored["faceres"]
    assert t == stored["threshold"]
    assert f["views"]["summary"]["max"] < t < f["different"]["summary"]["min"]
    assert t < 9.79 < 10.0  # a reconstruction of Obama as another man reads 9.79: human's own 10 accepts it
    assert stored["limits"] and stored["how"]["photos"]


# ------------------------------------------------------------------------------------------ photo benchmark


def test_find_photos_takes_folders_and_files(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.jpg", "a.png", "c.JPEG", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"")
    (tmp_path / "e").mkdir()
    single = tmp_path / "x.webp"
    single.write_bytes(b"")
    found = pb.find_photos([tmp_path / "d", single, tmp_path / "d" / "a.png"])
    assert [p.name for p in found] == ["a.png", "b.jpg", "c.JPEG", "x.webp"]
    with pytest.raises(ValueError, match="no photos"):
        pb.find_photos([tmp_path / "e"])
    with pytest.raises(ValueError, match="no such file"):
        pb.find_photos([tmp_path / "missing.jpg"])


class StubPipe:
    """A pipeline with fidelity modes (what the guard branch adds): the faithful reconstruction is the photo
    itself, the fast one a darker copy; the edit brightens; alignments let the edit be pasted back."""

    resolution = 32
    device = torch.device("cpu")

    def __init__(self, alignments: bool = True):
        self.alignments = alignments
        self.calls = []

    def read_prompt(self, prompt):
        return {"expression": "happy"} if "smile" in prompt else {}

    def edit(self, image, prompt, *, align=False, fidelity="fast"):
        self.calls.append((image, prompt, align, fidelity))
        img = Image.open(image).convert("RGB")
        src = img.resize((32, 32))
        rec = src if fidelity == "faithful" else src.point(lambda v: v // 2)
        edit = src.point(lambda v: min(255, v + 120))
        face = Face.from_landmarks(LANDMARKS, img.size)
        return SimpleNamespace(
            images=[edit],
            source_images=[src],
            reconstructions=[rec],
            alignments=[face.alignment] if self.alignments else None,
        )


def _run(pipe, photos, out, modes=("fast", "faithful"), prompts=("make them smile",)):
    return pb.run_photo_benchmark(
        pipe, photos, out, modes, prompts, judge=StubJudge(), identity=StubIdentity(), lpips=stub_lpips,
        threshold=3.0, progress=False,
    )  # fmt: skip


def test_the_photo_benchmark_measures_each_mode_side_by_side(tmp_path):
    for k, bg in enumerate([(40, 60, 90), (230, 220, 210)]):
        _photo(bg=bg).save(tmp_path / f"p{k}.png")
    (tmp_path / "noface.png").write_bytes(b"")  # unreadable: reported as an error row, not fatal
    pipe = StubPipe()
    photos = [tmp_path / "p0.png", tmp_path / "p1.png", tmp_path / "noface.png"]
    r = _run(pipe, photos, tmp_path / "out")
    assert {c[3] for c in pipe.calls} == {"fast", "faithful"} and all(c[2] for c in pipe.calls)  # aligned
    p0 = r["photos"][0]["modes"]
    assert p0["faithful"]["reconstruction"]["lpips"] == 0 and p0["faithful"]["reconstruction"]["same_person"]
    assert p0["fast"]["reconstruction"]["lpips"] > 0
    e = p0["fast"]["edits"]["make them smile"]
    assert e["success"] is True and e["already"] is False and e["asked"] == {"expression": "happy"}
    assert e["pasted_back"] and p0["fast"]["seconds_total"] >= 0
    assert (
        r["photos"][1]["modes"]["fast"]["edits"]["make them smile"]["already"] is True
    )  # bright: reads happy
    assert "error" in r["photos"][2] and not r["photos"][2]["modes"]
    s = r["summary"]["faithful"]
    assert s["num"] == 2 and s["same_person"] == [2, 2] and s["edits"]["make them smile"]["success"] == [2, 2]
    assert s["edits"]["make them smile"]["success_not_already"] == [1, 1]
    out = tmp_path / "out"
    assert json.loads((out / "photos.json").read_text())["same_person_threshold"] == 3.0
    md = (out / "photos.md").read_text()
    assert "**fast / faithful**" in md and "| p0.png |" in md and "noface.png | error:" in md
    assert (
        "yes / yes" in md
        and "**all (2 / 2)**" in md
        and "not already 1/1 / 1/1" in md
        and "p1.png ('make them smile')" in md
    )
    grid = Image.open(out / "grids" / "p0.png")
    assert (
        grid.height == 2 * pb.TILE + 2 and grid.width > 3 * pb.TILE
    )  # two modes; photo | rec | edit | pasted
    assert Image.open(out / "contact_sheet.png").height > grid.height // 2


def test_without_alignments_the_grid_has_three_columns_and_many_prompts_widen_the_table(tmp_path):
    _photo().save(tmp_path / "p.png")
    r = _run(
        StubPipe(alignments=False), [tmp_path / "p.png"], tmp_path / "o", ("fast",), ("make them smile", "x")
    )
    assert set(r["photos"][0]["modes"]["fast"]["edits"]) == {"make them smile", "x"}
    assert r["photos"][0]["modes"]["fast"]["edits"]["x"]["success"] is None  # nothing the judge reads
    grid = Image.open(tmp_path / "o" / "grids" / "p.png")
    assert grid.size == (4 * pb.TILE + 3 * 2, pb.TILE)  # photo | rec | edit | edit
    md = (tmp_path / "o" / "photos.md").read_text()
    assert "'x': nothing judged" in md and "**fast**" in md


def test_a_pipeline_without_fidelity_modes_gives_the_fast_edit_only(tiny_pipe, tmp_path, monkeypatch):
    Image.new("RGB", (20, 20), (200, 180, 40)).save(tmp_path / "f.png")
    assert pb.supports_fidelity(tiny_pipe) and pb.supports_fidelity(StubPipe())
    monkeypatch.setattr(pb, "supports_fidelity", lambda pipe: False)  # a pipeline from before fidelity modes
    r = pb.run_photo_benchmark(
        tiny_pipe, [tmp_path / "f.png"], tmp_path / "o", ("fast", "faithful"), ("blond hair",),
        judge=StubJudge(), identity=False, lpips=stub_lpips, threshold=1.0, align=False, progress=False,
    )  # fmt: skip
    row = r["photos"][0]
    fast = row["modes"]["fast"]
    assert fast["reconstruction"]["dlib"] is None and fast["reconstruction"]["lpips"] >= 0  # decoded codes
    assert fast["edits"]["blond hair"]["asked"] == {"hair_color": "blond"}
    assert "faithful" not in row["modes"] and "no fidelity modes" in row["error"]
    md = (tmp_path / "o" / "photos.md").read_text()
    assert "stopped after fast" in md


def test_without_reconstructions_the_code_is_decoded_by_the_tuned_generator():
    decoded = []
    pipe = SimpleNamespace(decode=lambda codes, generator=None: decoded.append(generator) or ["img"])
    out = SimpleNamespace(source_latents=torch.zeros(1, 2, 3), reconstructions=None, tuned_generators=["G1"])
    assert pb._reconstruction(pipe, out) == "img" and decoded == ["G1"]
    out.tuned_generators = None
    pb._reconstruction(pipe, out)
    assert decoded == ["G1", None]


# ------------------------------------------------------------------------------------------ the command


def _refused(argv, message, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("tedigan face-benchmark: error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--photos", "empty"], "--photos: no photos (jpg, jpeg, png) in empty"),
        (["--photos", "missing.jpg"], "--photos: missing.jpg: no such file or folder"),
        (["--photos", "photos", "--modes", "mix"], "--modes must name fidelity modes of fast, faithful"),
        (["--photos", "photos", "--photo", "p.jpg"], "not both"),
        (["--photos", "photos", "--text", " "], "empty text"),
        (["--text", "smile"], "--text is for --photos"),
        (["--photos", "broken.png"], "broken.png"),
    ],
)
def test_the_command_refuses_bad_photo_arguments_in_one_line(extra, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "photos").mkdir()
    _photo().save(tmp_path / "photos" / "a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    _refused(["face-benchmark", "--out", "o", *extra], message, capsys)
    assert not (tmp_path / "o").exists()


def test_the_command_refuses_faithful_on_a_pipeline_without_it(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pb, "supports_fidelity", lambda pipe: False)  # a pipeline from before fidelity modes
    _photo().save(tmp_path / "a.png")
    argv = ["face-benchmark", "--photos", "a.png", "--model", str(tiny_model_dir), "--out", "o"]
    _refused(argv, "no fidelity modes (only its fast edit): use --modes fast", capsys)


class StubRegions:
    """Region labellers that see glasses on an image brighter than the photo (the stub pipe's edit brightens)."""

    labeller = SimpleNamespace(models={"eyewear": SimpleNamespace(values=("none", "glasses"))})

    def probs(self, x):
        bright = (x.mean(dim=(1, 2, 3)) > x[0].mean() + 0.3).float()  # [photo, reconstruction, edit]
        return {"eyewear": torch.stack([1 - bright, bright], dim=1)}


def test_region_attributes_are_read_by_the_region_labellers(tmp_path):
    class GlassesPipe(StubPipe):
        def read_prompt(self, prompt):
            return {"eyewear": "glasses"}  # human's nets cannot read it: the region labellers do

    _photo(bg=(40, 60, 90)).save(tmp_path / "p0.png")
    r = pb.run_photo_benchmark(
        GlassesPipe(), [tmp_path / "p0.png"], tmp_path / "out", ("fast",), ("add glasses",), judge=StubJudge(),
        identity=StubIdentity(), lpips=stub_lpips, threshold=3.0, progress=False, regions=StubRegions(),
    )  # fmt: skip
    e = r["photos"][0]["modes"]["fast"]["edits"]["add glasses"]
    assert e["success"] is True and e["reads"] == {"eyewear": "glasses"} and e["p_asked"] == 1.0
    assert e["already"] is False
