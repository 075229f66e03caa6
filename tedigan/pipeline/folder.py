"""Pipeline folders: ``model_index.json`` and one entry per part, read and written by one loop over a registry.

A folder holds one subfolder per trained component (``model.safetensors`` + ``config.json``, listed under
``components``), the files of the other parts (``layer_map.json``, ``vocabulary.json``,
``prototypes.safetensors``, each under its own key), the model card ``README.md`` and ``model_index.json``::

    {"format_version": 2, "components": {"generator": "generator", ...}, "layer_map": "layer_map.json",
     "vocabulary": "vocabulary.json", "prototypes": "prototypes.safetensors", "truncation_psi": 0.7,
     "defaults": {"edit_mode": "prototype", "edit_steps": 0}, "info": {"trained_by": ...}, ...}

``defaults`` (:class:`PipelineDefaults`) are the model's own choices for what a call leaves open; ``info`` is
free-form provenance. Folders of format 0 and 1 kept the defaults inside ``info``; they load as they are.
Components this tedigan does not know and unknown default keys are skipped with a warning; a folder of a newer
format is refused with one line. Model classes are imported when a folder is read, so ``NAMED_MODELS`` and
``model_folder`` cost nothing to import.
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tedigan.domains import DEFAULT_MODEL, SHIPPED_MODELS
from tedigan.pipeline.inputs import (
    MAX_STEPS,
    PipelineError,
    check_fidelity,
    check_integer,
    check_mode,
    check_number,
)

__all__ = [
    "DEFAULT_MODEL_DIR",
    "INDEX_FORMAT_VERSION",
    "INDEX_NAME",
    "LAYER_MAP_NAME",
    "NAMED_MODELS",
    "PARTS",
    "Part",
    "PipelineDefaults",
    "check_parts",
    "load_folder",
    "load_generator",
    "model_folder",
    "packaged_generator",
    "read_index",
    "save_folder",
]

#: The model shipped with the package (trained by ``bash train_all.sh``; see its README.md model card).
DEFAULT_MODEL_DIR = SHIPPED_MODELS[DEFAULT_MODEL]
#: the models tedigan ships, by name (``from_pretrained("faces")``, ``--model faces``)
NAMED_MODELS = SHIPPED_MODELS

INDEX_NAME = "model_index.json"
LAYER_MAP_NAME = "layer_map.json"
#: version of ``model_index.json``: 0 = before versioning, 1 = defaults inside ``info``, 2 = ``defaults``
INDEX_FORMAT_VERSION = 2


def model_folder(path: str | Path | None) -> Path:
    """The folder of a pipeline: ``None`` is the default model, a name of :data:`NAMED_MODELS` a shipped one
    (unless a folder of that name exists here), anything else a folder."""
    if path is None:
        return DEFAULT_MODEL_DIR
    if isinstance(path, str) and path in NAMED_MODELS and not Path(path).is_dir():
        return NAMED_MODELS[path]
    return Path(path)


@dataclass
class PipelineDefaults:
    """The model's own choice for what a call leaves open (the one its benchmark measured best).

    ``edit_mode``: the edit mode of :meth:`~tedigan.pipeline.TediGANPipeline.edit` when ``mode=None``;
    ``edit_steps``: the optimisation steps the edit command runs when ``--steps`` is not given;
    ``fidelity``: how ``edit`` / ``invert`` invert an image when ``fidelity=None`` (``"fast"``: the encoder;
    ``"faithful"``: :func:`~tedigan.editing.faithful.faithful_invert`); ``pti_lr``: the learning rate of pivotal
    tuning (``pti_steps``, and the tuning stage of the faithful inversion): 3e-3 fits the small avatar generators,
    a 1024 px face generator needs the paper's 3e-4 scale (3e-3 destroys it within a few steps)."""

    edit_mode: str = "mix"
    edit_steps: int = 0
    fidelity: str = "fast"
    pti_lr: float = 3e-3

    def __post_init__(self) -> None:
        self.edit_mode = check_mode(self.edit_mode)
        self.edit_steps = check_integer("edit_steps", self.edit_steps, 0, MAX_STEPS)
        self.fidelity = check_fidelity(self.fidelity)
        self.pti_lr = check_number("pti_lr", self.pti_lr, 0.0, 1.0)
        if self.pti_lr == 0:
            raise PipelineError("pti_lr must be > 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = INDEX_NAME) -> PipelineDefaults:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            warnings.warn(f"{where}: ignoring unknown defaults {unknown}", stacklevel=3)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except PipelineError as err:
            raise PipelineError(f"{where}: defaults: {err}") from None


# ------------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Part:
    """One thing a pipeline folder can hold: the pipeline attribute ``name``, how to read it from the folder
    (``load(folder, entry, device, torch_dtype)``, ``entry`` being its value in the index) and how to write it
    (``save(obj, folder, dtype)`` -> its index entry). ``component``: listed under ``components`` (a trained
    module in its own subfolder); otherwise a top-level key of the index."""

    name: str
    load: Callable[[Path, Any, Any, Any], Any]
    save: Callable[[Any, Path, Any], Any]
    required: bool = False
    component: bool = True


def _module_part(name: str, cls_path: str, required: bool = False) -> Part:
    def load(folder: Path, entry: Any, device: Any, torch_dtype: Any) -> Any:
        if not isinstance(entry, str) or not (folder / entry).is_dir():
            raise PipelineError(
                f"{folder / INDEX_NAME} names {name} in {entry}/, which is missing from {folder}"
            )
        module, _, cls = cls_path.rpartition(".")
        klass = getattr(importlib.import_module(module), cls)
        return klass.from_pretrained(folder / entry, map_location=device, torch_dtype=torch_dtype)

    def save(obj: Any, folder: Path, dtype: Any) -> Any:
        obj.save_pretrained(folder / name, dtype=dtype)
        return name

    return Part(name, load, save, required)


def packaged_generator(spec: dict, device: Any, where: Path | str = INDEX_NAME) -> Any:
    """The generator a pipeline folder names by package rather than stores (``{"package": "mobilestylegan",
    "resolution": 256}``: the FFHQ MobileStyleGAN of the random-face package, whose weights are research /
    non-commercial and are never copied into a pipeline folder)."""
    if spec.get("package") != "mobilestylegan":
        raise PipelineError(
            f"{where}: unknown generator package {spec.get('package')!r} (known: mobilestylegan)"
        )
    from tedigan.models.ports.mobilestylegan import MobileStyleGAN

    try:
        return MobileStyleGAN.from_package(device=device, resolution=int(spec.get("resolution", 256)))
    except (TypeError, ValueError) as err:
        raise PipelineError(f"{where}: generator {spec}: {err}") from None


def _generator_part() -> Part:
    stored = _module_part("generator", "tedigan.models.stylegan2.Generator", required=True)

    def load(folder: Path, entry: Any, device: Any, torch_dtype: Any) -> Any:
        if isinstance(entry, dict):  # named by its package, not stored
            return packaged_generator(entry, device, folder / INDEX_NAME)
        return stored.load(folder, entry, device, torch_dtype)

    def save(obj: Any, folder: Path, dtype: Any) -> Any:
        if hasattr(obj, "package_spec"):  # a generator an installed package provides: named only
            return obj.package_spec()
        return stored.save(obj, folder, dtype)

    return Part("generator", load, save, required=True)


def _file_part(name: str, cls_path: str, file_name: str, save_into_folder: bool) -> Part:
    def load(folder: Path, entry: Any, device: Any, torch_dtype: Any) -> Any:
        module, _, cls = cls_path.rpartition(".")
        return getattr(importlib.import_module(module), cls).load(folder / str(entry))

    def save(obj: Any, folder: Path, dtype: Any) -> Any:
        if save_into_folder:
            obj.save(folder, **({"plot": False} if name == "layer_map" else {}))
        else:
            obj.save(folder / file_name)
        return file_name

    return Part(name, load, save, component=False)


def _boundaries_part() -> Part:
    def load(folder: Path, entry: Any, device: Any, torch_dtype: Any) -> Any:
        from tedigan.editing.boundaries import AttributeBoundaries

        if not isinstance(entry, str) or not (folder / entry).is_dir():
            raise PipelineError(f"{folder / INDEX_NAME} names boundaries in {entry}/, which is missing")
        return AttributeBoundaries.load(folder / entry)

    def save(obj: Any, folder: Path, dtype: Any) -> Any:
        obj.save(folder / "boundaries")
        return "boundaries"

    return Part("boundaries", load, save)


#: every part a pipeline folder can hold, in the order they are read and written
PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        _generator_part(),
        _module_part("encoder", "tedigan.models.encoder.Encoder", required=True),
        _module_part("text_encoder", "tedigan.models.text_encoder.TextEncoder"),
        _module_part("sketch_encoder", "tedigan.models.encoder.Encoder"),
        _module_part("label_encoder", "tedigan.models.encoder.Encoder"),
        _module_part("classifier", "tedigan.models.classifier.AttributeClassifier"),
        _module_part("domain_classifier", "tedigan.models.classifier.AttributeClassifier"),
        # optional: the fast route of the faithful inversion (faces model; tedigan.models.proxy_head)
        _module_part("proxy_head", "tedigan.models.proxy_head.ProxyHead"),
        # optional: attribute boundaries in W (faces model; tedigan.editing.boundaries)
        _boundaries_part(),
        _file_part("layer_map", "tedigan.editing.layer_analysis.LayerMap", LAYER_MAP_NAME, True),
        _file_part("vocabulary", "tedigan.data.vocabulary.Vocabulary", "vocabulary.json", True),
        _file_part("prototypes", "tedigan.models.prototypes.Prototypes", "prototypes.safetensors", False),
    )
}


def check_parts(parts: dict[str, Any]) -> None:
    """The parts of one pipeline fit together: the layer map, vocabulary and prototypes are of their types,
    and every part with W+ codes covers the generator's ``num_ws`` layers."""
    from tedigan.data.vocabulary import Vocabulary
    from tedigan.editing.layer_analysis import LayerMap
    from tedigan.models.prototypes import Prototypes

    for name, kind in (("layer_map", LayerMap), ("vocabulary", Vocabulary), ("prototypes", Prototypes)):
        if parts.get(name) is not None and not isinstance(parts[name], kind):
            raise PipelineError(f"{name} must be a {kind.__name__}, got {type(parts[name])}")
    num_ws = int(parts["generator"].num_ws)
    covered = {
        "the layer map": getattr(parts.get("layer_map"), "num_ws", None),
        "the value prototypes": getattr(parts.get("prototypes"), "num_ws", None),
        **{
            name: int(parts[name].config.num_ws)
            for name in ("encoder", "text_encoder", "sketch_encoder", "label_encoder", "proxy_head")
            if parts.get(name) is not None
        },
    }
    if parts.get("proxy_head") is not None:
        from tedigan.models.ports.mobilestylegan import MobileStyleGAN

        if not isinstance(parts["generator"], MobileStyleGAN):
            raise PipelineError(
                "proxy_head is a fast route through MobileStyleGAN's synthesis, and this pipeline's generator "
                f"is a {type(parts['generator']).__name__}: drop the proxy_head component"
            )
    for name, n in covered.items():
        if n not in (None, num_ws):
            raise PipelineError(
                f"{name} covers {n} W+ layers, the generator has {num_ws}: the components come from different runs"
            )


# ------------------------------------------------------------------------------------------------ reading


def read_index(path: str | Path | None) -> tuple[Path, dict[str, Any]]:
    """The folder of ``path`` (see :func:`model_folder`) and its checked ``model_index.json``."""
    folder = model_folder(path)
    if not folder.is_dir():
        where = "the shipped default model" if path is None else "model folder"
        raise PipelineError(
            f"{where} {folder} does not exist: pass a folder written by TediGANPipeline.save_pretrained "
            "or `tedigan assemble` (train one with `bash train_all.sh`)"
        )
    index_file = folder / INDEX_NAME
    if not index_file.is_file():
        raise PipelineError(
            f"{folder} has no {INDEX_NAME}: it is not a pipeline folder (for train_all.sh outputs run "
            f"`tedigan assemble --stages {folder} --out MODEL_DIR`)"
        )
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PipelineError(f"{index_file} is not valid JSON ({err}): re-save the pipeline") from None
    if not isinstance(index, dict) or not isinstance(index.get("components", {}), dict):
        raise PipelineError(f"{index_file} must hold a JSON object with a components mapping")
    version = index.get("format_version", 0)
    if not isinstance(version, int) or version > INDEX_FORMAT_VERSION:
        raise PipelineError(
            f"{index_file} has format version {version!r}; this tedigan reads up to {INDEX_FORMAT_VERSION}: "
            "upgrade tedigan to load it"
        )
    psi = index.get("truncation_psi", 0.7)
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi):
        raise PipelineError(f"{index_file}: truncation_psi must be a number, got {psi!r}")
    return folder, index


def _load_part(part: Part, folder: Path, entry: Any, device: Any, torch_dtype: Any) -> Any:
    try:
        return part.load(folder, entry, device, torch_dtype)
    except PipelineError:
        raise
    except (ValueError, FileNotFoundError) as err:  # ComponentLoadError, LayerMapError, ... are ValueErrors
        raise PipelineError(f"{part.name}: {err}") from None


def _defaults_and_info(index: dict[str, Any], where: str) -> tuple[PipelineDefaults, dict[str, Any]]:
    info = dict(index.get("info") or {})
    if index.get("format_version", 0) < 2:  # format 0/1 kept the defaults among the provenance
        data = {k: info.pop(k) for k in ("edit_mode", "edit_steps") if k in info}
    else:
        data = index.get("defaults") or {}
        if not isinstance(data, dict):
            raise PipelineError(f"{where}: defaults must be a JSON object, got {data!r}")
    return PipelineDefaults.from_dict(data, where), info


def load_folder(path: str | Path | None, device: Any = "cpu", torch_dtype: Any = None) -> dict[str, Any]:
    """Everything a pipeline folder holds, as keyword arguments of :class:`TediGANPipeline` (every part of
    :data:`PARTS` present, ``truncation_psi``, ``defaults``, ``info``) plus ``model_card`` (its README.md)."""
    folder, index = read_index(path)
    index_file = folder / INDEX_NAME
    known = {n for n, p in PARTS.items() if p.component}
    for name in index.get("components", {}):
        if name not in known:
            warnings.warn(
                f"{index_file}: skipping component {name!r}, which this tedigan does not know "
                f"(known: {sorted(known)})",
                stacklevel=3,
            )
    kwargs: dict[str, Any] = {}
    for name, part in PARTS.items():
        entry = index.get("components", {}).get(name) if part.component else index.get(name)
        if entry:
            kwargs[name] = _load_part(part, folder, entry, device, torch_dtype)
        elif part.required:
            raise PipelineError(f"{folder} has no {name}: a pipeline needs at least a generator and encoder")
    kwargs["defaults"], kwargs["info"] = _defaults_and_info(index, str(index_file))
    kwargs["truncation_psi"] = index.get("truncation_psi", 0.7)
    card = folder / "README.md"
    kwargs["model_card"] = card.read_text(encoding="utf-8") if card.is_file() else None
    return kwargs


def load_generator(path: str | Path | None = None, device: Any = "cpu") -> tuple[Any, float]:
    """Only the generator of a pipeline folder and its default truncation psi: what sampling needs, without
    loading the encoders and the text model."""
    folder, index = read_index(path)
    entry = index.get("components", {}).get("generator")
    if not entry:
        raise PipelineError(f"{folder} has no generator: a pipeline needs at least a generator and encoder")
    return _load_part(PARTS["generator"], folder, entry, device, None), float(
        index.get("truncation_psi", 0.7)
    )


# ------------------------------------------------------------------------------------------------ writing


def save_folder(pipe: Any, path: str | Path, dtype: Any = None) -> Path:
    """Write every part of ``pipe`` present (components cast to ``dtype`` when given), its model card and
    ``model_index.json`` into a folder beside ``path``, then rename it into place."""
    import torch

    from tedigan.fs import replace_dir, temp_dir_for

    final = Path(path)
    folder = temp_dir_for(final)  # built beside the target and renamed into place when whole
    index: dict[str, Any] = {
        "_class_name": type(pipe).__name__,
        "format_version": INDEX_FORMAT_VERSION,
        "components": {},
        "layer_map": None,
        "vocabulary": None,
    }
    for name, part in PARTS.items():
        obj = getattr(pipe, name)
        if obj is None:
            continue
        entry = part.save(obj, folder, dtype)
        if part.component:
            index["components"][name] = entry
        else:
            index[name] = entry
    index.update(
        truncation_psi=pipe.truncation_psi,
        defaults=asdict(pipe.defaults),
        resolution=pipe.resolution,
        num_ws=pipe.num_ws,
        dtype=str(dtype or torch.float32).replace("torch.", ""),
        info=pipe.info,
    )
    if pipe.model_card is not None:
        (folder / "README.md").write_text(pipe.model_card, encoding="utf-8")
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return replace_dir(folder, final)
