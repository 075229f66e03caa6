"""Real-data loaders: image decoding and conversion, image folder, datasets, Multi-Modal-CelebA-HQ, factory.

Every layout is built here in tmp_path from a few tiny images.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torch.utils.data import DataLoader

from tedigan.data import (
    HFImageTextDataset,
    ImageFolderDataset,
    ImageLoadError,
    MMCelebAHQDataset,
    collate_samples,
    convert_image,
    load_image,
    load_label_map,
    make_dataset,
    read_split_file,
    to_pil,
    to_tensor,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def save(img: Image.Image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def solid(color, size=(8, 8)) -> Image.Image:
    return Image.new("RGB", size, color)


def noise_bytes(fmt: str, size: int = 32) -> bytes:
    arr = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(int)


# ----------------------------------------------------------------------------------------- mode handling


def test_grey_and_binary_modes_become_equal_rgb_channels():
    grey = convert_image(Image.new("L", (2, 2), 77))
    assert grey.mode == "RGB" and pixels(grey)[0, 0].tolist() == [77, 77, 77]
    one = Image.new("1", (2, 1))
    one.putpixel((1, 0), 1)
    assert pixels(convert_image(one))[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 255, 128)])
    out = pixels(convert_image(rgba))[0]
    assert out[0].tolist() == list(WHITE)
    assert out[1].tolist() == list(RED)
    assert np.abs(out[2] - [127, 127, 255]).max() <= 1
    la = Image.new("LA", (2, 1))
    la.putdata([(0, 0), (100, 128)])
    out = pixels(convert_image(la))[0]
    assert out[0].tolist() == list(WHITE)
    assert abs(out[1][0] - (100 * 128 + 255 * 127) / 255) <= 1
    assert pixels(load_image(la, mode="L")).shape == (1, 2)


def test_premultiplied_and_palette_alpha_modes():
    rgba_pre = Image.new("RGBa", (1, 1), (100, 0, 0, 255))
    assert pixels(convert_image(rgba_pre))[0, 0].tolist() == [100, 0, 0]
    pa = Image.new("PA", (1, 1), (0, 0))
    pa.putpalette([0, 0, 0] * 256)
    assert pixels(convert_image(pa))[0, 0].tolist() == list(WHITE)


def test_palette_with_transparency_from_png(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    pal.putdata([0, 1])
    path = save(pal, tmp_path / "p.png", transparency=0)
    assert Image.open(path).mode == "P"
    out = pixels(load_image(path))[0]
    assert out[0].tolist() == list(WHITE)  # the transparent red index
    assert out[1].tolist() == list(GREEN)


def test_transparent_colour_key_in_rgb_and_l_pngs(tmp_path):
    rgb = Image.new("RGB", (2, 1), RED)
    rgb.putpixel((1, 0), BLUE)
    out = pixels(load_image(save(rgb, tmp_path / "rgb.png", transparency=RED)))[0]
    assert out.tolist() == [list(WHITE), list(BLUE)]
    grey = Image.new("L", (2, 1), 10)
    grey.putpixel((1, 0), 50)
    out = pixels(load_image(save(grey, tmp_path / "l.png", transparency=10)))[0]
    assert out[:, 0].tolist() == [255, 50]


def test_16bit_ints_rescale_by_type_range_not_clip(tmp_path):
    arr = np.array([[0, 65535], [257 * 128, 1000]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    expected = [[0, 255], [128, 4]]
    assert pixels(convert_image(img))[:, :, 0].tolist() == expected
    reloaded = load_image(save(img, tmp_path / "deep.png"))  # 16-bit PNG round trip
    assert pixels(reloaded)[:, :, 0].tolist() == expected
    big_endian = Image.new("I;16B", (1, 1), 65535)
    assert pixels(convert_image(big_endian))[0, 0].tolist() == [255, 255, 255]


def test_32bit_int_and_float_modes():
    as16 = Image.fromarray(np.array([[0, 65535, 257 * 200]], dtype=np.int32))
    assert as16.mode == "I"
    assert pixels(convert_image(as16))[0, :, 0].tolist() == [0, 255, 200]
    info = np.iinfo(np.int32)
    full = Image.fromarray(np.array([[info.min, info.max]], dtype=np.int32))
    assert pixels(convert_image(full))[0, :, 0].tolist() == [0, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert pixels(convert_image(unit))[0, :, 0].tolist() == [0, 128, 255]
    wide = Image.fromarray(np.array([[-1.0, 1.0, 3.0]], dtype=np.float32))
    assert pixels(convert_image(wide))[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_ycbcr_and_lab():
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0)])
    assert pixels(convert_image(cmyk))[0].tolist() == [list(WHITE), [0, 0, 0], [0, 255, 255]]
    ycc = solid((200, 30, 60), (2, 2)).convert("YCbCr")
    assert np.abs(pixels(convert_image(ycc))[0, 0] - [200, 30, 60]).max() <= 2
    lab_white = Image.new("LAB", (1, 1), (255, 128, 128))
    assert pixels(convert_image(lab_white))[0, 0].min() >= 250


def test_cmyk_jpeg_file(tmp_path):
    path = save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), tmp_path / "cmyk.jpg", quality=95)
    out = load_image(path)
    assert out.mode == "RGB" and pixels(out).min() >= 250


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (32, 16), RED)
    img.paste(BLUE, (16, 0, 32, 16))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = save(img, tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (16, 32)
    top, bottom = pixels(out)[4, 8], pixels(out)[28, 8]
    assert np.abs(top - RED).max() < 40 and np.abs(bottom - BLUE).max() < 40


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, ""),
        ("random.jpg", bytes(range(256)) * 4, "not a recognised image"),
        ("truncated.png", noise_bytes("PNG")[:700], "truncated"),
        ("truncated.jpg", noise_bytes("JPEG")[:-200], "truncated"),
        ("empty.png", b"", "empty file"),
    ],
)
def test_bad_files_raise_one_line_error_naming_the_path(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert reason.lower() in message.lower()
    assert info.value.path == str(path)
    assert isinstance(info.value, ValueError)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file_and_empty_bytes():
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image("/nonexistent/face.png")
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(b"")
    with pytest.raises(ValueError, match="mode"):
        load_image(b"x", mode="CMYK")


# --------------------------------------------------------------------------------------------- tensors


def test_to_tensor_centre_crops_resizes_and_scales():
    img = Image.new("RGB", (12, 8), GREEN)
    img.paste(RED, (0, 0, 2, 8))
    img.paste(BLUE, (10, 0, 12, 8))
    t = to_tensor(img, 4)
    assert t.shape == (3, 4, 4) and t.dtype == torch.float32
    assert torch.equal(t[1], torch.ones(4, 4)) and torch.equal(t[0], -torch.ones(4, 4))
    grey = to_tensor(Image.new("L", (5, 5), 255), None)
    assert grey.shape == (1, 5, 5) and torch.equal(grey, torch.ones(1, 5, 5))


def test_to_pil_inverts_to_tensor():
    arr = np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    t = to_tensor(Image.fromarray(arr))
    assert np.array_equal(np.asarray(to_pil(t)), arr)
    batch = to_pil(torch.stack([t, t.clamp(max=0)]))
    assert isinstance(batch, list) and len(batch) == 2 and batch[0].mode == "RGB"
    assert to_pil(torch.full((1, 2, 2), 5.0)).getpixel((0, 0)) == 255  # clamped
    with pytest.raises(ValueError):
        to_pil(torch.zeros(2, 2))


def test_label_maps_from_palette_and_grey_pngs(tmp_path):
    classes = np.arange(16, dtype=np.uint8).reshape(4, 4) % 19
    pal = Image.frombytes("P", (4, 4), classes.tobytes())
    pal.putpalette([(i * 37) % 256 for i in range(768)])
    lab = load_label_map(save(pal, tmp_path / "p.png"), None)
    assert lab.dtype == torch.int64 and torch.equal(lab, torch.from_numpy(classes.astype(np.int64)))
    big = np.kron(classes, np.ones((2, 2), dtype=np.uint8))  # 8x8, 2x2 blocks
    small = load_label_map(save(Image.fromarray(big, mode="L"), tmp_path / "l.png"), 4)
    assert torch.equal(small, torch.from_numpy(classes.astype(np.int64)))
    grey_rgb = Image.fromarray(big, mode="L").convert("RGB")
    assert torch.equal(load_label_map(save(grey_rgb, tmp_path / "g.png"), 8), torch.from_numpy(big).long())
    with pytest.raises(ImageLoadError, match="colour-coded"):
        load_label_map(save(solid(RED, (4, 4)), tmp_path / "c.png"))


# -------------------------------------------------------------------------------------------- folder


def make_folder(root, with_captions=True):
    save(solid(RED), root / "b" / "x.png")
    save(solid(GREEN, (12, 8)), root / "a" / "deep" / "y.jpg", quality=95)
    save(solid(BLUE), root / "c.png")
    save(solid(WHITE), root / ".hidden" / "skip.png")
    (root / "notes.txt").write_text("not an image")
    if with_captions:
        lines = [
            {"file_name": "b/x.png", "text": "a red face"},
            {"file_name": "./a/deep/y.jpg", "captions": ["green one", "  ", "green two"]},
            {"file_name": "b/x.png", "captions": ["crimson face"]},
        ]
        (root / "captions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    return root


def test_folder_scan_is_recursive_sorted_and_captioned(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path), resolution=4)
    assert ds.files == ["a/deep/y.jpg", "b/x.png", "c.png"]
    assert [ds.captions_for(i) for i in range(3)] == [
        ["green one", "green two"],
        ["a red face", "crimson face"],
        [],
    ]
    sample = ds[1]
    assert set(sample) == {"image", "caption", "captions", "index"}
    assert sample["image"].shape == (3, 4, 4) and sample["index"] == 1
    assert torch.equal(sample["image"][0], torch.ones(4, 4)) and torch.equal(
        sample["image"][1], -torch.ones(4, 4)
    )
    assert sample["caption"] in sample["captions"]
    assert ds[2]["caption"] == "" and ds[2]["captions"] == []
    assert ds[0]["image"][1].min() > 0.95  # the 12x8 JPEG, centre-cropped
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_samples)))
    assert batch["image"].shape == (3, 3, 4, 4) and len(batch["caption"]) == 3
    assert batch["captions"][0] == ["green one", "green two"] and batch["captions"][2] == []
    assert torch.equal(batch["index"], torch.tensor([0, 1, 2]))


def test_folder_without_captions_and_caption_file_errors(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path, with_captions=False), resolution=8)
    assert len(ds) == 3 and all(ds[i]["captions"] == [] and ds[i]["caption"] == "" for i in range(3))
    with pytest.raises(FileNotFoundError, match="other.jsonl"):
        ImageFolderDataset(tmp_path, captions_file="other.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"file_name": "c.png", "text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        ImageFolderDataset(tmp_path, captions_file="bad.jsonl")
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(tmp_path / "b", extensions=(".webp",))


def make_folder_with_bad_files(root):
    save(solid(RED), root / "a.png")
    (root / "b.png").write_bytes(b"definitely not a png")
    (root / "c.png").write_bytes(b"")
    (root / "d.jpg").write_bytes(noise_bytes("JPEG")[:-200])
    save(solid(BLUE), root / "e.png")
    return root


def test_folder_skip_logs_each_bad_file_once_and_serves_next_good(tmp_path, caplog):
    ds = ImageFolderDataset(make_folder_with_bad_files(tmp_path), resolution=4, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="tedigan.data"):
        first = ds[1]
        again = ds[2]
    assert first["index"] == 4 and again["index"] == 4
    assert torch.equal(first["image"][2], torch.ones(4, 4))  # blue e.png
    bad = [str(tmp_path / n) for n in ("b.png", "c.png", "d.jpg")]
    assert ds.bad_files == bad
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(any(b in w for w in warnings) for b in bad)


def test_folder_raise_names_the_path(tmp_path):
    ds = ImageFolderDataset(make_folder_with_bad_files(tmp_path), resolution=4, on_error="raise")
    assert ds[0]["index"] == 0
    with pytest.raises(ImageLoadError, match="b.png"):
        ds[1]
    with pytest.raises(ValueError, match="on_error"):
        ImageFolderDataset(tmp_path, on_error="ignore")


def test_folder_all_bad_raises_instead_of_looping(tmp_path):
    for name in ("x.png", "y.png"):
        (tmp_path / name).write_bytes(b"broken")
    ds = ImageFolderDataset(tmp_path, resolution=4)
    with pytest.raises(RuntimeError, match="all 2 images failed"):
        ds[0]


def test_folder_verify_preflight(tmp_path):
    ds = ImageFolderDataset(make_folder_with_bad_files(tmp_path), resolution=4)
    bad = ds.verify()
    assert bad == [str(tmp_path / n) for n in ("b.png", "c.png", "d.jpg")] and ds.bad_files == bad
    assert ds.verify(exclude=True) == bad
    assert ds.files == ["a.png", "e.png"] and [ds[i]["index"] for i in range(2)] == [0, 1]


# ------------------------------------------------------------------------------------- hf data sets


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def save_hf(path, columns, features):
    import datasets

    ds = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    ds.save_to_disk(str(path))
    return ds


def test_hf_saved_dataset_detects_columns_and_converts(tmp_path):
    import datasets

    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    images = [{"bytes": png_bytes(solid(RED)), "path": None}, {"bytes": png_bytes(deep), "path": None}]
    save_hf(
        tmp_path / "ds",
        {"image": images, "caption": ["red face", "white face\nbright face"], "score": [1, 2]},
        {"image": datasets.Image(), "caption": datasets.Value("string"), "score": datasets.Value("int32")},
    )
    ds = HFImageTextDataset(tmp_path / "ds", resolution=4)
    assert ds.image_column == "image" and ds.text_column == "caption" and len(ds) == 2
    red, white = ds[0], ds[1]
    assert torch.equal(red["image"][0], torch.ones(4, 4)) and torch.equal(red["image"][1], -torch.ones(4, 4))
    assert torch.equal(white["image"], torch.ones(3, 4, 4))  # 16-bit white -> 255 -> 1.0
    assert red["captions"] == ["red face"] and white["captions"] == ["white face", "bright face"]


def test_hf_dataset_dict_splits_and_list_captions(tmp_path):
    import datasets

    feats = datasets.Features({"img": datasets.Image(), "texts": datasets.List(datasets.Value("string"))})

    def split(color):
        return datasets.Dataset.from_dict(
            {"img": [{"bytes": png_bytes(solid(color)), "path": None}], "texts": [["one", "two"]]},
            features=feats,
        )

    datasets.DatasetDict({"train": split(RED), "test": split(BLUE)}).save_to_disk(str(tmp_path / "dd"))
    test = HFImageTextDataset(tmp_path / "dd", split="test", resolution=4)
    assert torch.equal(test[0]["image"][2], torch.ones(4, 4)) and test[0]["captions"] == ["one", "two"]
    with pytest.raises(KeyError, match="available splits: train, test"):
        HFImageTextDataset(tmp_path / "dd", split="validation")


def test_hf_column_errors_list_columns(tmp_path):
    import datasets

    save_hf(
        tmp_path / "amb",
        {"image": [{"bytes": png_bytes(solid(RED)), "path": None}], "foo": ["x"], "bar": ["y"]},
        {"image": datasets.Image(), "foo": datasets.Value("string"), "bar": datasets.Value("string")},
    )
    with pytest.raises(ValueError, match=r"foo, bar.*Columns: image \(Image\), foo \(Value\), bar \(Value\)"):
        HFImageTextDataset(tmp_path / "amb")
    assert HFImageTextDataset(tmp_path / "amb", text_column="bar", resolution=4)[0]["captions"] == ["y"]
    assert HFImageTextDataset(tmp_path / "amb", text_column=False, resolution=4)[0]["caption"] == ""
    with pytest.raises(KeyError, match="no column 'baz'"):
        HFImageTextDataset(tmp_path / "amb", text_column="baz")
    save_hf(tmp_path / "noimg", {"text": ["x"]}, {"text": datasets.Value("string")})
    with pytest.raises(ValueError, match=r"no Image column.*text \(Value\)"):
        HFImageTextDataset(tmp_path / "noimg")


def test_hf_label_sketch_columns_and_bad_rows(tmp_path):
    import datasets

    label = Image.fromarray(np.array([[0, 1], [2, 3]], dtype=np.uint8), mode="L")
    sketch = Image.new("L", (2, 2), 255)
    good = {"bytes": png_bytes(solid(GREEN, (2, 2))), "path": None}
    bad = {"bytes": b"not an image", "path": None}
    img_cells = {"bytes": png_bytes(label), "path": None}, {"bytes": png_bytes(sketch), "path": None}
    save_hf(
        tmp_path / "ds",
        {"image": [bad, good], "label": [img_cells[0]] * 2, "sketch": [img_cells[1]] * 2, "text": ["a", "b"]},
        {
            "image": datasets.Image(),
            "label": datasets.Image(),
            "sketch": datasets.Image(),
            "text": datasets.Value("string"),
        },
    )
    ds = HFImageTextDataset(tmp_path / "ds", resolution=None)
    sample = ds[0]  # row 0 is broken: skipped, row 1 served
    assert sample["index"] == 1 and sample["captions"] == ["b"]
    assert (
        torch.equal(sample["label"], torch.tensor([[0, 1], [2, 3]])) and sample["label"].dtype == torch.int64
    )
    assert torch.equal(sample["sketch"], torch.ones(1, 2, 2))
    assert len(ds.bad_files) == 1 and "[0]" in ds.bad_files[0]
    with pytest.raises(ImageLoadError, match=r"\[train\]\[0\]"):
        HFImageTextDataset(tmp_path / "ds", on_error="raise")[0]


def test_hf_imagefolder_via_load_dataset(tmp_path):
    root = tmp_path / "imagefolder" / "train"
    for i, color in enumerate((RED, BLUE)):
        save(solid(color), root / f"{i}.png")
    (root / "metadata.jsonl").write_text(
        "\n".join(json.dumps({"file_name": f"{i}.png", "text": f"face {i}"}) for i in range(2))
    )
    ds = make_dataset("hf", str(tmp_path / "imagefolder"), resolution=4, cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, HFImageTextDataset) and len(ds) == 2
    by_caption = {ds[i]["caption"]: ds[i]["image"] for i in range(2)}
    assert torch.equal(by_caption["face 1"][2], torch.ones(4, 4))


# -------------------------------------------------------------------------------- Multi-Modal-CelebA-HQ


MM_IDS = (0, 1, 2, 24000, 24001)


def make_mmceleba(root, ids=MM_IDS, pickles=True):
    for n in ids:
        save(solid((n % 256, 100, 200), (16, 16)), root / "image" / f"{n}.jpg", quality=95)
        (root / "text").mkdir(parents=True, exist_ok=True)
        (root / "text" / f"{n}.txt").write_text("\n".join(f"caption {k} of {n}" for k in range(10)) + "\n")
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[:, 8:] = 18
        save(Image.fromarray(mask, mode="L"), root / "label" / f"{n:05d}.png")  # zero-padded name on purpose
        sketch = np.full((16, 16), 255, dtype=np.uint8)
        sketch[8:10, :] = 0  # a dark stroke on white
        save(Image.fromarray(sketch, mode="L"), root / "sketch" / f"{n}.png")
    if pickles:
        for split, names in (("train", ["0", "1", "2"]), ("test", [24000, 24001])):
            (root / split).mkdir(exist_ok=True)
            (root / split / "filenames.pickle").write_bytes(pickle.dumps(names, protocol=2))
    return root


def test_mmceleba_splits_captions_masks_sketches(tmp_path):
    root = make_mmceleba(tmp_path)
    train = MMCelebAHQDataset(root, "train", resolution=8, with_masks=True, with_sketches=True)
    test = MMCelebAHQDataset(root, "test", resolution=8)
    assert train.ids == ["0", "1", "2"] and test.ids == ["24000", "24001"]
    assert len(MMCelebAHQDataset(root, "all", resolution=8)) == 5
    sample = train[1]
    assert (
        sample["captions"] == [f"caption {k} of 1" for k in range(10)]
        and sample["caption"] in sample["captions"]
    )
    assert (
        sample["image"].shape == (3, 8, 8)
        and abs(sample["image"][2].mean().item() - (200 / 127.5 - 1)) < 0.03
    )
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == (8, 8)
    assert set(sample["label"][:, :4].unique().tolist()) == {0} and set(
        sample["label"][:, 4:].unique().tolist()
    ) == {18}
    assert (
        sample["sketch"].shape == (1, 8, 8)
        and sample["sketch"].max() == 1.0
        and sample["sketch"].min() < -0.5
    )
    assert "label" not in test[0] and "sketch" not in test[0]
    batch = next(iter(DataLoader(train, batch_size=3, collate_fn=collate_samples)))
    assert batch["label"].shape == (3, 8, 8) and batch["sketch"].shape == (3, 1, 8, 8)


def test_mmceleba_missing_optional_folders_error_only_when_requested(tmp_path):
    root = make_mmceleba(tmp_path)
    for name in ("label", "sketch"):
        for f in (root / name).iterdir():
            f.unlink()
        (root / name).rmdir()
    assert len(MMCelebAHQDataset(root, "train", resolution=8)) == 3
    with pytest.raises(FileNotFoundError, match="no mask folder.*mask_dir"):
        MMCelebAHQDataset(root, "train", with_masks=True)
    with pytest.raises(FileNotFoundError, match="no sketch folder"):
        MMCelebAHQDataset(root, "train", with_sketches=True)
    with pytest.raises(ValueError, match="split must be one of"):
        MMCelebAHQDataset(root, "val")


def test_mmceleba_without_split_files_uses_release_id_ranges(tmp_path, caplog):
    root = make_mmceleba(tmp_path, pickles=False)
    with caplog.at_level(logging.WARNING, logger="tedigan.data"):
        train = MMCelebAHQDataset(root, "train", resolution=8)
    assert train.ids == ["0", "1", "2"] and "id ranges" in caplog.text
    assert MMCelebAHQDataset(root, "test", resolution=8).ids == ["24000", "24001"]
    (root / "train.txt").write_text("# ids\nimage/2.jpg\n00001\n")
    assert MMCelebAHQDataset(root, "train", resolution=8).ids == ["2", "1"]


def test_mmceleba_swapped_split_files_warn(tmp_path, caplog):
    root = make_mmceleba(tmp_path)
    (root / "train" / "filenames.pickle").write_bytes(pickle.dumps(["24000"]))
    with caplog.at_level(logging.WARNING, logger="tedigan.data"):
        MMCelebAHQDataset(root, "train", resolution=8)
    assert "each other's folder" in caplog.text


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_split_pickles_cannot_run_code(tmp_path, capsys):
    path = tmp_path / "filenames.pickle"
    path.write_bytes(pickle.dumps([_Exploit()]))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        read_split_file(path)
    assert "pwned" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="expected a list"):
        read_split_file(path)
    path.write_bytes(pickle.dumps(["7.jpg", b"00008", 9], protocol=2))
    assert read_split_file(path) == ["7", "8", "9"]


def test_mmceleba_skips_bad_image_and_drops_ids_without_mask(tmp_path, caplog):
    root = make_mmceleba(tmp_path)
    (root / "image" / "1.jpg").write_bytes(b"broken")
    (root / "label" / "00002.png").unlink()
    with caplog.at_level(logging.WARNING, logger="tedigan.data"):
        ds = MMCelebAHQDataset(root, "train", resolution=8, with_masks=True)
    assert ds.ids == ["0", "1"] and "no mask file" in caplog.text
    assert ds[1]["index"] == 0 and ds.bad_files == [str(root / "image" / "1.jpg")]


# ------------------------------------------------------------------------------------------- factory


def test_make_dataset_kinds(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "folder")
    assert isinstance(make_dataset("folder", str(folder), resolution=8), ImageFolderDataset)
    mm = make_dataset("mmceleba", make_mmceleba(tmp_path / "mm"), split="test", resolution=8, with_masks=True)
    assert isinstance(mm, MMCelebAHQDataset) and mm[0]["image"].shape == (3, 8, 8)
    with pytest.raises(ValueError, match="avatars, faces, folder, hf, mmceleba"):
        make_dataset("celeba", str(folder))

    calls = []
    fake = types.ModuleType("tedigan.data.avatars")
    fake.AvatarDataset = lambda root, split="train", resolution=None, **kw: calls.append(
        (root, split, resolution)
    )
    monkeypatch.setitem(sys.modules, "tedigan.data.avatars", fake)
    make_dataset("avatars", "renders", split="test", resolution=32)
    assert calls == [("renders", "test", 32)]


def test_errors_survive_pickling_and_dataloader_workers(tmp_path):
    err = pickle.loads(pickle.dumps(ImageLoadError("/data/x.png", "truncated")))
    assert (err.path, err.reason, str(err)) == (
        "/data/x.png",
        "truncated",
        "cannot load image /data/x.png: truncated",
    )
    (tmp_path / "bad.png").write_bytes(b"broken")
    ds = ImageFolderDataset(tmp_path, resolution=4, on_error="raise")
    with pytest.raises(ImageLoadError, match="bad.png"):
        next(iter(DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate_samples)))


def test_symlink_loop_in_folder_is_scanned_once(tmp_path):
    save(solid(RED), tmp_path / "a" / "x.png")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    assert ImageFolderDataset(tmp_path, resolution=4).files == ["a/x.png"]
