"""The one pipeline object: text-guided editing, text-to-image and sketch/label-to-image with trained parts.

::

    from tedigan import TediGANPipeline
    pipe = TediGANPipeline.from_pretrained()            # the default shipped model (or a name, a folder)
    out = pipe.edit("face.png", "blond hair", steps=30)  # out.images[0] is a PIL image
    out = pipe.generate("a smiling man with a beard", num_images=4, seed=0)
    out = pipe.generate("red hair", sketch="sketch.png")
    pipe.save_pretrained("my_model")

A pipeline folder holds one subfolder per component (``model.safetensors`` + ``config.json`` each), the
layer map of :mod:`tedigan.editing.layer_analysis` and ``model_index.json`` naming them::

    generator/  encoder/  text_encoder/  [sketch_encoder/  label_encoder/  classifier/]  layer_map.json

The data flow follows TediGAN (Xia et al., CVPR 2021): the image encoder inverts the input into W+, the text
encoder maps the prompt into W+, the layer map picks the W+ layers that carry what the prompt names, and
:func:`tedigan.editing.mixing.edit_codes` takes those layers from the text code. With ``steps > 0`` the mixed
code is refined by instance-level optimisation (:func:`tedigan.editing.optimization.optimize_latent`): pixel
and LPIPS losses to the source *outside the region the mix changed* (a mask measured from ``G(mixed)`` vs
``G(inverted)``), the encoder regulariser ``‖w − E(G(w))‖²`` and the distance to the mixed code on the
selected layers, so the edit stays while the rest of the face moves back towards the source.

This module does inference only; a pipeline folder is assembled from the stage outputs of ``train_all.sh``
by :mod:`tedigan.training.assemble` (``python -m tedigan.training.assemble --stages OUT --out DIR``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from tedigan.assets import DEFAULT_MODEL, SHIPPED_MODELS
from tedigan.data.io import load_image, load_label_map, to_pil, to_tensor
from tedigan.data.vocabulary import VOCABULARY_NAME, Vocabulary, VocabularyError
from tedigan.editing.mixing import as_wplus, edit_codes, shift_codes, text_to_image_codes
from tedigan.editing.optimization import OptimizationConfig, optimize_latent
from tedigan.editing.prototypes import shift_to_prototypes
from tedigan.fs import replace_dir, temp_dir_for
from tedigan.models.base import FORMAT_VERSION, ComponentLoadError
from tedigan.models.classifier import AttributeClassifier
from tedigan.models.encoder import Encoder
from tedigan.models.prototypes import PROTOTYPES_NAME, PrototypeError, Prototypes
from tedigan.models.stylegan2 import Generator
from tedigan.models.text_encoder import TextEncoder, check_texts

__all__ = [
    "DEFAULT_MODEL_DIR",
    "EDIT_MODES",
    "NAMED_MODELS",
    "model_folder",
    "INDEX_NAME",
    "PipelineError",
    "OutOfDomainWarning",
    "PromptNotUnderstood",
    "TediGANOutput",
    "TediGANPipeline",
    "change_mask",
]

#: The model shipped with the package (trained by ``bash train_all.sh``; see its README.md model card).
DEFAULT_MODEL_DIR = SHIPPED_MODELS[DEFAULT_MODEL]
#: the models tedigan ships, by name (``from_pretrained("faces")``, ``--model faces``)
NAMED_MODELS = SHIPPED_MODELS


def model_folder(path: str | Path | None) -> Path:
    """The folder of a pipeline: ``None`` is the default model, a name of :data:`NAMED_MODELS` a shipped one
    (unless a folder of that name exists here), anything else a folder."""
    if path is None:
        return DEFAULT_MODEL_DIR
    if isinstance(path, str) and path in NAMED_MODELS and not Path(path).is_dir():
        return NAMED_MODELS[path]
    return Path(path)


INDEX_NAME = "model_index.json"
LAYER_MAP_NAME = "layer_map.json"

#: component name -> (class, required)
COMPONENTS: dict[str, tuple[type, bool]] = {
    "generator": (Generator, True),
    "encoder": (Encoder, True),
    "text_encoder": (TextEncoder, False),
    "sketch_encoder": (Encoder, False),
    "label_encoder": (Encoder, False),
    "classifier": (AttributeClassifier, False),
    "domain_classifier": (AttributeClassifier, False),
}


class PipelineError(ValueError):
    """Something the user can fix (a missing folder or component, a bad argument); the message says how."""


class OutOfDomainWarning(UserWarning):
    """An input looks like another domain's image than the pipeline's (the CLIs print it as one line)."""


#: the pipeline's judge must be at least this sure that an input belongs to another domain before it says so
OUT_OF_DOMAIN_P = 0.9


class PromptNotUnderstood(PipelineError):
    """The pipeline's vocabulary reads nothing in the prompt: editing would be a guess, so it is refused."""


#: largest accepted values of the call arguments (beyond them a call would run for days or exhaust memory)
MAX_STEPS = 10_000
MAX_IMAGES = 10_000
MAX_SEED = 2**32 - 1
STRENGTH_RANGE = (0.0, 2.0)
PSI_RANGE = (-2.0, 2.0)
#: how an edit changes the selected layers: TediGAN's mixing, a move along the text direction, or a move
#: between value prototypes (:mod:`tedigan.editing.prototypes`)
EDIT_MODES = ("mix", "delta", "prototype")
#: codes synthesised per generator call in ``generate`` (any ``num_images`` runs in chunks of this size)
GENERATE_CHUNK = 64


@dataclass
class TediGANOutput:
    """What every pipeline call returns.

    ``images``: the results as PIL images (the generator's resolution). ``latents``: their W+ codes
    ``[B, num_ws, w_dim]``. ``layers``: the W+ layers taken from the text code (empty when no text was used).
    ``source_images`` / ``source_latents``: the aligned input and its inverted code (edit, invert, and
    sketch/label generation). ``text_latents``: the prompt's code ``[1, num_ws, w_dim]``. ``losses``: the
    optimisation history (one dict per step; empty when ``steps = 0``). ``seconds``: wall time of the call.
    ``tuned_generators``: with ``pti_steps > 0``, each image's pivotally tuned generator copy (render more codes
    of that image with ``g.synthesis(w, noise_mode="const")``); else None.
    """

    images: list[Image.Image]
    latents: torch.Tensor
    layers: list[int] = field(default_factory=list)
    source_images: list[Image.Image] | None = None
    source_latents: torch.Tensor | None = None
    text_latents: torch.Tensor | None = None
    losses: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    tuned_generators: list[Any] | None = None


def packaged_generator(spec: dict, device: str | torch.device, where: Path | str = "model_index.json") -> Any:
    """The generator a pipeline folder names by package rather than stores (``{"package": "mobilestylegan",
    "resolution": 256}``: the FFHQ MobileStyleGAN of the random-face package, whose weights are research /
    non-commercial and are never copied into a pipeline folder)."""
    if spec.get("package") != "mobilestylegan":
        raise PipelineError(
            f"{where}: unknown generator package {spec.get('package')!r} (known: mobilestylegan)"
        )
    from tedigan.models.mobilestylegan import MobileStyleGAN

    try:
        return MobileStyleGAN.from_package(device=device, resolution=int(spec.get("resolution", 256)))
    except (TypeError, ValueError) as err:
        raise PipelineError(f"{where}: generator {spec}: {err}") from None


def change_mask(
    before: torch.Tensor, after: torch.Tensor, threshold: float = 0.2, grow: int = 1
) -> torch.Tensor:
    """Where ``after`` keeps ``before``: ``[B, 1, H, W]`` in [0, 1], 1 = unchanged, 0 = changed.

    The per-pixel mean absolute difference (images in [-1, 1]) is grown by a ``2·grow+1`` max filter, so
    edges of a changed region count as changed, and mapped linearly: 0 difference -> 1, ``threshold`` or
    more -> 0.
    """
    d = (after - before).abs().mean(dim=1, keepdim=True)
    if grow > 0:
        d = F.max_pool2d(d, kernel_size=2 * grow + 1, stride=1, padding=grow)
    return (1.0 - d / threshold).clamp(0.0, 1.0)


def _edit_defaults() -> OptimizationConfig:
    # An edit starts from the mixed code: text term and mask keep the edit, pixel/LPIPS restore the rest.
    return OptimizationConfig(steps=0, lr=0.01, pixel_weight=1.0, lpips_weight=1.0, encoder_weight=1.0)


class TediGANPipeline:
    """Trained generator + image/text (+ sketch/label) encoders + layer map (see the module docs)."""

    def __init__(
        self,
        generator: Generator,
        encoder: Encoder,
        text_encoder: TextEncoder | None = None,
        sketch_encoder: Encoder | None = None,
        label_encoder: Encoder | None = None,
        classifier: AttributeClassifier | None = None,
        layer_map: Any = None,
        truncation_psi: float = 0.7,
        info: dict[str, Any] | None = None,
        vocabulary: Vocabulary | None = None,
        domain_classifier: AttributeClassifier | None = None,
        prototypes: Prototypes | None = None,
    ) -> None:
        self.generator = generator.eval()
        self.encoder = encoder.eval()
        self.text_encoder = text_encoder.eval() if text_encoder is not None else None
        self.sketch_encoder = sketch_encoder.eval() if sketch_encoder is not None else None
        self.label_encoder = label_encoder.eval() if label_encoder is not None else None
        self.classifier = classifier.eval() if classifier is not None else None
        self.domain_classifier = domain_classifier.eval() if domain_classifier is not None else None
        if layer_map is not None:
            from tedigan.editing.layer_analysis import LayerMap

            if isinstance(layer_map, (str, Path)):
                layer_map = LayerMap.load(layer_map)
            if not isinstance(layer_map, LayerMap):
                raise PipelineError(
                    f"layer_map must be a LayerMap or a layer_map.json path, got {type(layer_map)}"
                )
            if layer_map.num_ws != int(generator.num_ws):
                raise PipelineError(
                    f"the layer map covers {layer_map.num_ws} W+ layers, the generator has {generator.num_ws}"
                )
        self.layer_map = layer_map
        if vocabulary is not None and not isinstance(vocabulary, Vocabulary):
            raise PipelineError(f"vocabulary must be a Vocabulary, got {type(vocabulary)}")
        self.vocabulary = vocabulary
        if prototypes is not None and not isinstance(prototypes, Prototypes):
            raise PipelineError(f"prototypes must be Prototypes, got {type(prototypes)}")
        if prototypes is not None and prototypes.num_ws not in (None, int(generator.num_ws)):
            raise PipelineError(
                f"the value prototypes cover {prototypes.num_ws} W+ layers, the generator has {generator.num_ws}"
            )
        self.prototypes = prototypes
        self.truncation_psi = float(truncation_psi)
        self.info = dict(info or {})
        self.model_card: str | None = None  # the folder's README.md, kept by save_pretrained
        self._lpips: Any = None
        for name in ("encoder", "sketch_encoder", "label_encoder", "text_encoder"):
            part = getattr(self, name)
            if part is not None and int(part.config.num_ws) != self.num_ws:
                raise PipelineError(
                    f"{name} predicts {part.config.num_ws} W+ layers, the generator has {self.num_ws}: "
                    "the components come from different runs"
                )

    # ------------------------------------------------------------------------------------------ properties

    @property
    def num_ws(self) -> int:
        return int(self.generator.num_ws)

    @property
    def resolution(self) -> int:
        return int(self.generator.config.resolution)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def components(self) -> dict[str, torch.nn.Module]:
        """The loaded components by name (optional ones only when present)."""
        return {n: getattr(self, n) for n in COMPONENTS if getattr(self, n) is not None}

    @property
    def dtype(self) -> torch.dtype:
        return next(self.generator.parameters()).dtype

    def to(
        self, device: str | torch.device | torch.dtype | None = None, dtype: torch.dtype | None = None
    ) -> TediGANPipeline:
        """Move every component to ``device`` and/or cast it to ``dtype`` (``pipe.to(torch.float16)``
        works too). Half precision serves encoder-only edits and sampling; optimisation needs float32."""
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and not dtype.is_floating_point:
            raise PipelineError(f"dtype must be a floating-point type, got {dtype}")
        if device is not None:
            try:
                device = torch.device(device)
            except (RuntimeError, TypeError) as err:
                raise PipelineError(f"unknown device {device!r} ({err}): use cpu or cuda") from None
        for module in [*self.components().values(), self._lpips]:
            if module is not None:
                module.to(device=device, dtype=dtype)
        return self

    # ----------------------------------------------------------------------------------------- save/load

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        torch_dtype: torch.dtype | str | None = None,
    ) -> TediGANPipeline:
        """Load a pipeline folder, or a shipped model by name (:data:`NAMED_MODELS`; ``None``: the default).

        ``torch_dtype``: ``None`` loads float32, ``"auto"`` the dtype the folder was saved in, or a dtype.
        Folders of an older format load as they are; components a newer tedigan added are skipped with a
        warning; a folder of a newer format than this tedigan reads is refused with one line."""
        folder = model_folder(path)
        if not folder.is_dir():
            where = "the shipped default model" if path is None else "model folder"
            raise PipelineError(
                f"{where} {folder} does not exist: pass a folder written by TediGANPipeline.save_pretrained "
                "or `python -m tedigan.training.assemble` (train one with `bash train_all.sh`)"
            )
        index_file = folder / INDEX_NAME
        if not index_file.is_file():
            raise PipelineError(
                f"{folder} has no {INDEX_NAME}: it is not a pipeline folder (for train_all.sh outputs run "
                f"`python -m tedigan.training.assemble --stages {folder} --out MODEL_DIR`)"
            )
        try:
            index = json.loads(index_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PipelineError(f"{index_file} is not valid JSON ({err}): re-save the pipeline") from None
        if not isinstance(index, dict) or not isinstance(index.get("components", {}), dict):
            raise PipelineError(f"{index_file} must hold a JSON object with a components mapping")
        version = index.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise PipelineError(
                f"{index_file} has format version {version!r}; this tedigan reads up to {FORMAT_VERSION}: "
                "upgrade tedigan to load it"
            )
        parts: dict[str, Any] = {}
        for name, sub in index.get("components", {}).items():
            if name not in COMPONENTS:
                warnings.warn(
                    f"{index_file}: skipping component {name!r}, which this tedigan does not know "
                    f"(known: {sorted(COMPONENTS)})",
                    stacklevel=2,
                )
                continue
            klass = COMPONENTS[name][0]
            if name == "generator" and isinstance(sub, dict):  # named by its package, not stored
                parts[name] = packaged_generator(sub, device, index_file)
                continue
            if not isinstance(sub, str) or not (folder / sub).is_dir():
                raise PipelineError(f"{index_file} names {name} in {sub}/, which is missing from {folder}")
            try:
                parts[name] = klass.from_pretrained(
                    folder / sub, map_location=device, torch_dtype=torch_dtype
                )
            except (ComponentLoadError, FileNotFoundError, ValueError) as err:
                raise PipelineError(f"{name}: {err}") from None
        for name, (_, required) in COMPONENTS.items():
            if required and name not in parts:
                raise PipelineError(
                    f"{folder} has no {name}: a pipeline needs at least a generator and encoder"
                )
        layer_map = None
        if index.get("layer_map"):
            from tedigan.editing.layer_analysis import LayerMap, LayerMapError

            try:
                layer_map = LayerMap.load(folder / str(index["layer_map"]))
            except (LayerMapError, FileNotFoundError) as err:
                raise PipelineError(str(err)) from None
        vocabulary = None
        if index.get("vocabulary"):
            try:
                vocabulary = Vocabulary.load(folder / str(index["vocabulary"]))
            except (VocabularyError, FileNotFoundError) as err:
                raise PipelineError(f"vocabulary: {err}") from None
        prototypes = None
        if index.get("prototypes"):
            try:
                prototypes = Prototypes.load(folder / str(index["prototypes"]))
            except (PrototypeError, FileNotFoundError) as err:
                raise PipelineError(f"prototypes: {err}") from None
        psi = index.get("truncation_psi", 0.7)
        if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi):
            raise PipelineError(f"{index_file}: truncation_psi must be a number, got {psi!r}")
        pipe = cls(
            **parts,
            layer_map=layer_map,
            truncation_psi=psi,
            info=index.get("info") or {},
            vocabulary=vocabulary,
            prototypes=prototypes,
        )
        card = folder / "README.md"
        pipe.model_card = card.read_text(encoding="utf-8") if card.is_file() else None
        return pipe

    @staticmethod
    def load_generator(
        path: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> tuple[Generator, float]:
        """Only the generator of a pipeline folder (and its default truncation psi): what sampling needs,
        without loading the encoders and the text model."""
        folder = model_folder(path)
        try:
            index = json.loads((folder / INDEX_NAME).read_text())
            sub = index["components"]["generator"]
            psi = float(index.get("truncation_psi", 0.7))
        except (OSError, ValueError, KeyError, TypeError):
            return (
                pipe := TediGANPipeline.from_pretrained(path, device=device)
            ).generator, pipe.truncation_psi
        if isinstance(sub, dict):
            return packaged_generator(sub, device, folder / INDEX_NAME), psi
        try:
            return Generator.from_pretrained(folder / str(sub), map_location=device), psi
        except (ComponentLoadError, FileNotFoundError, ValueError) as err:
            raise PipelineError(f"generator: {err}") from None

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write every component (``dtype``, e.g. ``torch.float16``, shrinks the files), the layer map and
        ``model_index.json``. Without ``dtype`` the components keep their current dtype; loading gives
        float32 unless ``from_pretrained(..., torch_dtype="auto")``."""
        final = Path(path)
        folder = temp_dir_for(final)  # built beside the target and renamed into place when whole
        components = {}
        for name, module in self.components().items():
            if hasattr(module, "package_spec"):  # a generator an installed package provides: named only
                components[name] = module.package_spec()
                continue
            module.save_pretrained(folder / name, dtype=dtype)
            components[name] = name
        index: dict[str, Any] = {
            "_class_name": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "components": components,
            "layer_map": None,
            "truncation_psi": self.truncation_psi,
            "resolution": self.resolution,
            "num_ws": self.num_ws,
            "dtype": str(dtype or torch.float32).replace("torch.", ""),
            "info": self.info,
            "vocabulary": None,
        }
        if self.vocabulary is not None:
            self.vocabulary.save(folder)
            index["vocabulary"] = VOCABULARY_NAME
        if self.layer_map is not None:
            self.layer_map.save(folder, plot=False)
            index["layer_map"] = LAYER_MAP_NAME
        if self.prototypes is not None:
            self.prototypes.save(folder / PROTOTYPES_NAME)
            index["prototypes"] = PROTOTYPES_NAME
        if self.model_card is not None:
            (folder / "README.md").write_text(self.model_card, encoding="utf-8")
        (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
        return replace_dir(folder, final)

    # ---------------------------------------------------------------------------------------------- inputs

    def _images(self, image: Any, *, mode: str = "RGB", align: bool = False) -> torch.Tensor:
        """Path / bytes / PIL / tensor (or a list of them) -> ``[B, C, R, R]`` in [-1, 1] on the device.

        Files and PIL images are converted from any mode; tensors must already be in [-1, 1]. Both are
        centre-cropped to a square and resized to the model's resolution."""
        items = list(image) if isinstance(image, (list, tuple)) else [image]
        if not items:
            raise PipelineError("no input image given")
        channels = 1 if mode == "L" else 3
        out = []
        for item in items:
            if isinstance(item, torch.Tensor):
                t = _center_square(_image_tensor(item, channels))
                if t.shape[-1] != self.resolution:
                    t = F.interpolate(t, size=(self.resolution,) * 2, mode="bilinear", antialias=True)
                out.append(t.to(self.device, self.dtype))
                continue
            pil = load_image(item, mode)
            if align:
                pil = _align_face(pil)
            out.append(to_tensor(pil, self.resolution).unsqueeze(0).to(self.device, self.dtype))
        return torch.cat(out)

    def _labels(self, label: Any) -> torch.Tensor:
        """Label maps (files, PIL or integer tensors ``[H, W]`` / ``[B, H, W]``) -> ``[B, R, R]`` class ids,
        centre-cropped and resized with nearest neighbours."""
        items = list(label) if isinstance(label, (list, tuple)) else [label]
        if not items:
            raise PipelineError("no label map given")
        maps = []
        for item in items:
            t = item if isinstance(item, torch.Tensor) else load_label_map(item)
            t = t.unsqueeze(0) if t.ndim == 2 else t
            if t.ndim != 3 or t.dtype.is_floating_point:
                raise PipelineError(
                    f"a label map must be integer class ids [H, W], got {t.dtype} {tuple(t.shape)}"
                )
            t = _center_square(t)
            if t.shape[-1] != self.resolution:
                t = F.interpolate(t[:, None].float(), size=(self.resolution,) * 2, mode="nearest")[
                    :, 0
                ].long()
            maps.append(t.to(self.device))
        return torch.cat(maps)

    @staticmethod
    def _clean_prompt(prompt: Any) -> str:
        try:
            (prompt,) = check_texts([prompt])
            prompt.encode("utf-8")
        except UnicodeEncodeError:
            raise PipelineError(
                "the prompt is not valid UTF-8 text: type it again or save it as UTF-8"
            ) from None
        except (ValueError, TypeError) as err:
            raise PipelineError(str(err)) from None
        return prompt

    def _text_code(self, prompt: str) -> torch.Tensor:
        if self.text_encoder is None:
            raise PipelineError("this pipeline has no text_encoder: train the text stage (bash train_all.sh)")
        return self.text_encoder.encode_text([self._clean_prompt(prompt)]).to(self.device)

    @property
    def domain(self) -> str | None:
        """The domain this pipeline serves (its vocabulary's), e.g. ``"faces"``; None when unknown."""
        return self.vocabulary.domain if self.vocabulary is not None else None

    @torch.no_grad()
    def check_domain(self, images: torch.Tensor) -> list[str | None]:
        """Per image, the other domain it looks like (None: this pipeline's, or no judge). Warns
        (:class:`OutOfDomainWarning`) naming the shipped model for that domain, once per call."""
        judge = self.domain_classifier
        names = (judge.config.heads.get("domain") if judge is not None else None) or []
        if not names or self.domain not in names:
            return [None] * len(images)
        x = F.interpolate(images.float(), size=(judge.config.resolution,) * 2, mode="area")
        probs = judge.to(torch.float32)(x.to(next(judge.parameters()).device))["domain"].softmax(dim=1).cpu()
        found = [
            names[int(p.argmax())]
            if names[int(p.argmax())] != self.domain and float(p.max()) >= OUT_OF_DOMAIN_P
            else None
            for p in probs
        ]
        other = next((f for f in found if f is not None), None)
        if other is not None:
            hint = (
                f"--model {other} / from_pretrained({other!r})"
                if other in NAMED_MODELS
                else f"a {other} model"
            )
            warnings.warn(
                f"{sum(f is not None for f in found)} of {len(found)} input image(s) look like {other}, not "
                f"{self.domain} (judged {float(probs.max(dim=1).values.max()):.2f} sure): this {self.domain} model "
                f"will edit it into nonsense; the model for {other} is {hint}",
                OutOfDomainWarning,
                stacklevel=3,
            )
        return found

    @torch.no_grad()
    def text_direction(self, prompt: str, phrases: int = 4) -> torch.Tensor:
        """The W+ direction of what ``prompt`` asks: for each value the vocabulary reads in it, the mean text code
        of that value's phrases minus the mean code of the other values' phrases (summed over the attributes
        asked), ``[1, num_ws, w_dim]``. The edit mode ``"delta"`` adds it to the image's code."""
        if self.vocabulary is None:
            raise PipelineError("a text direction needs the pipeline's vocabulary (its phrases per value)")
        asked = self.read_prompt(prompt)
        direction = torch.zeros(1, self.num_ws, int(self.generator.mapping.w_avg.numel()), device=self.device)
        for attribute, value in asked.items():
            values = self.vocabulary.attributes[attribute]
            pos = values[value][:phrases] or [value.replace("_", " ")]
            neg = [p for v, ps in values.items() if v != value for p in (ps[:2] or [v.replace("_", " ")])]
            codes = self.text_encoder.encode_text([*pos, *neg]).to(self.device)
            direction += codes[: len(pos)].mean(0, keepdim=True) - codes[len(pos) :].mean(0, keepdim=True)
        return direction

    def _check_prototypes(self, asked: dict[str, str]) -> None:
        if self.prototypes is None:
            raise PipelineError(
                "this model has no value prototypes (prototypes.safetensors, written by the text stage): "
                "use mode='mix' or 'delta', or re-assemble it from a newer text stage"
            )
        if not asked:
            raise PipelineError("mode 'prototype' needs a prompt the model's vocabulary reads")
        for a, v in asked.items():
            if v not in self.prototypes.codes.get(a, {}):
                raise PipelineError(
                    f"the model has no prototype for {a.replace('_', ' ')} = {v} (no training caption named it): "
                    "use mode='mix' for this prompt"
                )

    def read_prompt(self, prompt: str) -> dict[str, str]:
        """``{attribute: value}`` the pipeline's vocabulary reads in ``prompt``; raises
        :class:`PromptNotUnderstood` when it reads nothing (``{}`` for pipelines without a vocabulary)."""
        prompt = self._clean_prompt(prompt)
        if self.vocabulary is None:
            return {}
        reading = self.vocabulary.read(prompt)
        if not reading and reading.dropped:
            a = reading.dropped[0]
            options = ", ".join(v for v in self.vocabulary.attributes[a] if v != "none")
            raise PromptNotUnderstood(
                f"{prompt!r} negates the {a.replace('_', ' ')}, which has no 'none' value: say what it should be "
                f"instead ({options})"
            )
        if not reading:
            names = ", ".join(a.replace("_", " ") for a in self.vocabulary.attributes)
            raise PromptNotUnderstood(
                f"the {self.vocabulary.domain} model does not understand {prompt!r}: name one of its attributes "
                f"({names}); or give the W+ layers to edit yourself (layers=, --layers)"
            )
        return reading.values

    def select_layers(self, prompt: str, w_text: torch.Tensor, w_ref: torch.Tensor) -> list[int]:
        """W+ layers for ``prompt``: the layer map's layers of the attributes the vocabulary reads in it;
        otherwise (no layer map, or no layers for those attributes) the layers the text code moves most from
        ``w_ref``. A prompt the vocabulary cannot read is refused (:class:`PromptNotUnderstood`)."""
        from tedigan.editing.layer_analysis import layers_for_prompt, top_moved_layers

        self.read_prompt(prompt)
        if self.layer_map is None:
            return top_moved_layers(w_text, w_ref, max(1, self.num_ws // 2))
        return layers_for_prompt(
            prompt, self.layer_map, vocabulary=self.vocabulary, w_text=w_text, w_ref=w_ref
        )

    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        try:
            out = sorted({int(i) for i in layers})
        except (TypeError, ValueError):
            raise PipelineError(f"layers must be W+ layer indices, got {layers!r}") from None
        if not out:
            raise PipelineError(f"layers is empty: name at least one W+ layer in 0..{self.num_ws - 1}")
        if any(not 0 <= i < self.num_ws for i in out):
            raise PipelineError(f"layers must be in 0..{self.num_ws - 1}, got {list(layers)}")
        return out

    def _lpips_loss(self) -> Any:
        if self._lpips is None:
            from tedigan.losses.perceptual import LPIPS

            self._lpips = LPIPS(net="vgg").to(self.device)
        return self._lpips

    def _optimise(
        self,
        w: torch.Tensor,
        target: torch.Tensor | None,
        w_keep: torch.Tensor,
        layers: list[int],
        mask: torch.Tensor | None,
        steps: int,
        seed: int,
        optimization: OptimizationConfig | None,
        progress: bool,
        callback: Any = None,
    ) -> Any:
        cfg = optimization or _edit_defaults()
        cfg = OptimizationConfig(
            **{**asdict(cfg), "steps": int(steps), "seed": int(seed), "progress": progress}
        )
        lpips = self._lpips_loss() if target is not None and cfg.lpips_weight > 0 else None
        return optimize_latent(
            self.generator,
            w,
            target,
            encoder=self.encoder,
            w_text=w_keep,
            layers=layers,
            mask=mask,
            lpips=lpips,
            config=cfg,
            callback=callback,
        )

    def _pivotal(
        self,
        pivots: torch.Tensor,
        targets: torch.Tensor,
        codes: torch.Tensor,
        steps: int,
        seed: int,
        progress: bool,
    ) -> tuple[torch.Tensor, list[Any]]:
        """Tune one generator copy per image around its pivot code (:mod:`tedigan.editing.pivotal`); render
        ``codes`` (one per image) with it. Returns the images and the tuned copies."""
        from tedigan.editing.pivotal import PivotalTuningConfig, pivotal_tuning

        cfg = PivotalTuningConfig(steps=steps, seed=seed, progress=progress)
        images, tuned = [], []
        for i in range(len(pivots)):
            g, _ = pivotal_tuning(
                self.generator, pivots[i : i + 1], targets[i : i + 1], self._lpips_loss(), cfg
            )
            with torch.no_grad():
                images.append(g.synthesis(codes[i : i + 1].float(), noise_mode="const"))
            tuned.append(g)
        return torch.cat(images), tuned

    # ------------------------------------------------------------------------------------------------ calls

    def __call__(
        self,
        prompt: str | None = None,
        image: Any = None,
        *,
        latents: torch.Tensor | None = None,
        num_images: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        **kwargs: Any,
    ) -> TediGANOutput:
        """The diffusers-style call: ``pipe("blond hair", image=face)`` edits (``image=`` or ``latents=``), and
        ``pipe("a smiling man", num_images=4)`` (or ``sketch=`` / ``label=``) generates. ``generator`` (a
        ``torch.Generator``) draws the seed, so repeated calls continue its stream as in diffusers;
        ``output_type="pt"`` gives ``images`` as a float tensor ``[B, 3, H, W]`` in [0, 1] instead of PIL
        images. Other keyword arguments go to :meth:`edit` / :meth:`generate`."""
        if output_type not in ("pil", "pt"):
            raise PipelineError(f"output_type must be 'pil' or 'pt', got {output_type!r}")
        if generator is not None:
            if "seed" in kwargs:
                raise PipelineError("give either generator= or seed=, not both")
            kwargs["seed"] = int(torch.randint(0, MAX_SEED, (1,), generator=generator).item())
        if image is not None or latents is not None:
            out = self.edit(image, prompt, latents=latents, **kwargs)
        else:
            out = self.generate(prompt, num_images=num_images, **kwargs)
        if output_type == "pt":
            with torch.no_grad():
                pt = self.generator.synthesis(out.latents.to(self.device, self.dtype), noise_mode="const")
            out.images = ((pt.float().clamp(-1, 1) + 1) / 2).cpu()  # type: ignore[assignment]
        return out

    def invert(
        self,
        image: Any,
        *,
        align: bool = False,
        steps: int = 0,
        pti_steps: int = 0,
        seed: int = 0,
        progress: bool = False,
    ) -> TediGANOutput:
        """Encode image(s) into W+ and reconstruct them; ``steps > 0`` then refines the codes by instance-level
        optimisation (pixel + LPIPS to the image, the encoder regulariser), as in-domain inversion does;
        ``pti_steps > 0`` then tunes a generator copy per image around its code (pivotal tuning) and renders
        with it (``tuned_generators`` of the output)."""
        start = time.perf_counter()
        steps = _integer("steps", steps, 0, MAX_STEPS)
        pti_steps = _integer("pti_steps", pti_steps, 0, MAX_STEPS)
        self._check_optimisable(max(steps, pti_steps))
        x = self._images(image, align=align)
        self.check_domain(x)
        with torch.no_grad():
            w = self.encoder(x)
        w_enc, losses = w, []
        if steps > 0:
            result = self._optimise(w, x, w, [], None, steps, seed, None, progress)
            w, rec, losses = result.w.detach(), result.image, result.losses
        else:
            with torch.no_grad():
                rec = self.generator.synthesis(w, noise_mode="const")
        tuned = None
        if pti_steps > 0:
            rec, tuned = self._pivotal(w, x, w, pti_steps, seed, progress)
        _checked_output(rec, w)
        return TediGANOutput(
            images=_pils(rec),
            latents=w,
            source_images=_pils(x),
            source_latents=w_enc,
            losses=losses,
            seconds=time.perf_counter() - start,
            tuned_generators=tuned,
        )

    def _latents(self, latents: Any) -> torch.Tensor:
        """Check W+ codes against the generator: ``[B, num_ws, w_dim]`` (or one ``[num_ws, w_dim]``), finite."""
        if not isinstance(latents, torch.Tensor) or not latents.dtype.is_floating_point:
            raise PipelineError(
                f"latents must be a float tensor [B, {self.num_ws}, w_dim], got {type(latents)}"
            )
        try:
            w = as_wplus(latents, what="latents")
        except ValueError as err:
            raise PipelineError(str(err)) from None
        w_dim = int(self.generator.mapping.w_avg.numel())
        if tuple(w.shape[1:]) != (self.num_ws, w_dim):
            raise PipelineError(
                f"latents are {tuple(w.shape)}, this generator takes [B, {self.num_ws}, {w_dim}] "
                "(codes from another model?)"
            )
        if not bool(torch.isfinite(w).all()):
            raise PipelineError("the latents hold NaN or inf values")
        return w.to(self.device, self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: Any = None) -> list[Image.Image]:
        """W+ codes ``[B, num_ws, w_dim]`` (e.g. ``out.source_latents``) -> images; ``generator``: another
        generator of this pipeline's code space to render them with (e.g. one of ``out.tuned_generators``)."""
        w = self._latents(latents)
        G = generator if generator is not None else self.generator
        images = G.synthesis(w.to(next(G.parameters()).dtype), noise_mode="const")
        _checked_output(images, w)
        return _pils(images)

    def _check_optimisable(self, steps: int) -> None:
        if steps > 0 and self.dtype != torch.float32:
            raise PipelineError(
                f"instance-level optimisation needs float32 weights, the pipeline is {self.dtype}: call "
                "pipe.to(torch.float32) first, or use steps=0"
            )

    def edit(
        self,
        image: Any,
        prompt: str,
        *,
        latents: torch.Tensor | None = None,
        steps: int | None = None,
        strength: float = 1.0,
        layers: Sequence[int] | None = None,
        seed: int = 0,
        align: bool = False,
        optimization: OptimizationConfig | None = None,
        progress: bool = True,
        callback: Any = None,
        mode: str | None = None,
        pti_steps: int = 0,
    ) -> TediGANOutput:
        """Edit image(s) as ``prompt`` says: invert, take the prompt's layers from its text code
        (``strength`` 0..1 interpolates them, up to 2 extrapolates), then optionally refine for ``steps`` Adam
        steps (0 = encoder-only edit; ``None``: ``optimization.steps`` when a config is given, else 0).
        ``layers`` overrides the layer map's choice. ``optimization`` sets the loss weights and learning rate;
        ``seed`` and ``progress`` of the call win over the config's. ``latents`` (W+ codes, e.g. saved by
        ``invert``) replace the inversion: pass ``image=None``; the source is then their rendering.
        ``callback(step, images)`` sees every optimisation step's images in [-1, 1] (projection videos).
        ``mode``: ``"mix"`` (TediGAN: the layers come from the text code), ``"delta"`` (the layers move along
        :meth:`text_direction`) or ``"prototype"`` (the code moves from the mean text code of the image's nearest
        value to the asked value's, :mod:`tedigan.editing.prototypes`; all layers unless ``layers`` is given);
        None: the model's ``info["edit_mode"]``, else ``"mix"``. ``pti_steps > 0``
        renders the edit with a generator copy tuned for ``pti_steps`` steps to reproduce the image from its
        inverted code (pivotal tuning, Roich et al. 2022; needs ``image``): the image's own details stay."""
        start = time.perf_counter()
        # 1. check the arguments (before any work)
        if (image is None) == (latents is None):
            raise PipelineError("give either an image or latents= (W+ codes), not both and not neither")
        steps = _steps(steps, optimization)
        strength = _number("strength", strength, *STRENGTH_RANGE)
        seed = _integer("seed", seed, 0, MAX_SEED)
        pti_steps = _integer("pti_steps", pti_steps, 0, MAX_STEPS)
        if pti_steps > 0 and image is None:
            raise PipelineError("pti_steps needs the image (pivotal tuning fits the generator to it)")
        self._check_optimisable(max(steps, pti_steps))
        mode = mode if mode is not None else self.info.get("edit_mode", "mix")
        if mode not in EDIT_MODES:
            raise PipelineError(f"mode must be one of {EDIT_MODES}, got {mode!r}")
        chosen = self._check_layers(layers) if layers is not None else None
        asked = self.read_prompt(prompt) if chosen is None or mode == "prototype" else {}
        if mode == "prototype":  # refused before any work when the model cannot do it
            self._check_prototypes(asked)
            chosen = chosen if chosen is not None else list(range(self.num_ws))
        # 2. encode the text, 3. invert the image
        w_text = self._text_code(prompt)
        w_given = self._latents(latents) if latents is not None else None
        x = self._images(image, align=align) if w_given is None else None
        if x is not None:
            self.check_domain(x)
        with torch.no_grad():
            if w_given is None:
                w_src = self.encoder(x)
            else:
                w_src = w_given
                x = self.generator.synthesis(w_src, noise_mode="const").clamp(-1, 1)
            # 4. mix the prompt's layers of the text code into the image's code
            if chosen is None:
                chosen = self.select_layers(prompt, w_text, w_src)
            if mode == "prototype":
                w_edit = shift_to_prototypes(w_src, self.prototypes, asked, chosen, strength)
            elif mode == "delta":
                w_edit = shift_codes(w_src, self.text_direction(prompt), chosen, strength)
            else:
                w_edit = edit_codes(w_src, w_text, chosen, strength)
            losses: list[dict[str, float]] = []
            if steps == 0:
                images = self.generator.synthesis(w_edit, noise_mode="const")
        # 5. optionally refine the code, keeping what the mix did not change
        if steps > 0:
            with torch.no_grad():
                before = self.generator.synthesis(w_src, noise_mode="const")
                after = self.generator.synthesis(w_edit, noise_mode="const")
                keep = change_mask(before, after)
            result = self._optimise(
                w_edit, x, w_edit, chosen, keep, steps, seed, optimization, progress, callback
            )
            w_edit, images, losses = result.w, result.image, result.losses
        # 6. optionally render with a generator tuned to the image around its code
        tuned = None
        if pti_steps > 0:
            images, tuned = self._pivotal(w_src, x, w_edit.detach(), pti_steps, seed, progress)
        # 7. decode (checked: never a black image for a NaN)
        _checked_output(images, w_edit)
        return TediGANOutput(
            images=_pils(images),
            latents=w_edit.detach(),
            layers=chosen,
            source_images=_pils(x),
            source_latents=w_src,
            text_latents=w_text,
            losses=losses,
            seconds=time.perf_counter() - start,
            tuned_generators=tuned,
        )

    def generate(
        self,
        prompt: str | None = None,
        *,
        num_images: int = 4,
        seed: int = 0,
        truncation_psi: float | None = None,
        sketch: Any = None,
        label: Any = None,
        layers: Sequence[int] | None = None,
        steps: int | None = None,
        optimization: OptimizationConfig | None = None,
        progress: bool = True,
    ) -> TediGANOutput:
        """Text-to-image: ``num_images`` faces whose prompt layers come from the text code and whose other
        layers come from seeded random codes (diversity); any number up to ``MAX_IMAGES`` runs in chunks of
        ``GENERATE_CHUNK``, and the same seed gives the same faces whatever the chunking. With ``sketch=`` or
        ``label=`` (one or a list): one face per input from that modality's encoder, the prompt (optional)
        mixed into its layers."""
        start = time.perf_counter()
        steps = _steps(steps, optimization)
        seed = _integer("seed", seed, 0, MAX_SEED)
        self._check_optimisable(steps)
        if sketch is not None and label is not None:
            raise PipelineError("give either sketch= or label=, not both")
        psi = self.truncation_psi if truncation_psi is None else truncation_psi
        psi = _number("truncation_psi", psi, *PSI_RANGE)
        chosen = self._check_layers(layers) if layers is not None else None
        source = source_w = None
        if sketch is not None or label is not None:
            enc = self.sketch_encoder if sketch is not None else self.label_encoder
            kind = "sketch" if sketch is not None else "label"
            if enc is None:
                raise PipelineError(f"this pipeline has no {kind}_encoder: train it with bash train_all.sh")
            inp = self._images(sketch, mode="L") if sketch is not None else self._labels(label)
            with torch.no_grad():
                source_w = enc(inp)
            source = _pils(inp) if sketch is not None else None
            if prompt is None:
                if steps or layers is not None:
                    raise PipelineError("steps and layers need a prompt to mix into the sketch/label code")
                with torch.no_grad():
                    images = self.generator.synthesis(source_w, noise_mode="const")
                _checked_output(images, source_w)
                return TediGANOutput(
                    images=_pils(images),
                    latents=source_w,
                    source_images=source,
                    source_latents=source_w,
                    seconds=time.perf_counter() - start,
                )
        if prompt is None:
            raise PipelineError("empty text: give a prompt (or a sketch= / label= input)")
        if chosen is None:
            self.read_prompt(prompt)
        num = _integer("num_images", num_images, 1, MAX_IMAGES) if source_w is None else len(source_w)
        w_text = self._text_code(prompt)
        with torch.no_grad():
            ref = source_w if source_w is not None else self.generator.mapping.w_avg
            if chosen is None:
                chosen = self.select_layers(prompt, w_text, ref)
        z = torch.randn(num, int(self.generator.z_dim), generator=torch.Generator().manual_seed(seed))
        starts = range(0, num, GENERATE_CHUNK)
        bar = tqdm(starts, desc="generate", unit="chunk", disable=len(starts) == 1 and not progress)
        pils: list[Image.Image] = []
        codes, losses = [], []
        for i in bar:
            with torch.no_grad():
                if source_w is not None:
                    w = edit_codes(source_w[i : i + GENERATE_CHUNK], w_text, chosen)
                else:
                    zi = z[i : i + GENERATE_CHUNK]
                    w = text_to_image_codes(w_text, self.generator, chosen, len(zi), truncation_psi=psi, z=zi)
                images = self.generator.synthesis(w, noise_mode="const") if steps == 0 else None
            if steps > 0:
                cfg = optimization or OptimizationConfig(
                    pixel_weight=0.0, lpips_weight=0.0, encoder_weight=1.0
                )
                result = self._optimise(
                    w,
                    None,
                    as_wplus(w).detach(),
                    chosen,
                    None,
                    steps,
                    seed,
                    cfg,
                    progress and len(starts) == 1,
                )
                w, images, chunk_losses = result.w, result.image, result.losses
                losses.extend(chunk_losses)
            _checked_output(images, w)
            pils.extend(_pils(images))
            codes.append(w.detach())
        return TediGANOutput(
            images=pils,
            latents=torch.cat(codes),
            layers=chosen,
            source_images=source,
            source_latents=source_w,
            text_latents=w_text,
            losses=losses,
            seconds=time.perf_counter() - start,
        )


def _center_square(t: torch.Tensor) -> torch.Tensor:
    """The centred square crop of ``[..., H, W]`` (side ``min(H, W)``), as files are cropped on load."""
    h, w = t.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return t[..., top : top + side, left : left + side]


def _image_tensor(item: torch.Tensor, channels: int) -> torch.Tensor:
    """Check an image tensor and bring it to float ``[B, C, H, W]`` in [-1, 1]. ``uint8`` tensors are read as
    0..255; float tensors must already be in [-1, 1] (a little overshoot, as generators give, is fine)."""
    t = item.unsqueeze(0) if item.ndim == 3 else item
    if t.ndim != 4 or t.shape[1] != channels or min(t.shape[-2:]) < 1 or t.shape[0] < 1:
        raise PipelineError(
            f"an image tensor must be [{channels}, H, W] or [B, {channels}, H, W] "
            f"({'grey' if channels == 1 else 'RGB'}), got {tuple(item.shape)}"
        )
    if t.dtype == torch.uint8:
        return t.float() / 127.5 - 1.0
    if not t.dtype.is_floating_point:
        raise PipelineError(f"an image tensor must be float in [-1, 1] or uint8 in 0..255, got {t.dtype}")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise PipelineError("the image tensor holds NaN or inf values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1.5 or hi > 1.5:
        hint = " (looks like 0..255: pass x / 127.5 - 1, or a uint8 tensor)" if hi > 2 else ""
        raise PipelineError(f"an image tensor must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")
    return t


def _number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PipelineError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise PipelineError(f"{name} must be a finite number in [{lo:g}, {hi:g}], got {value}")
    return value


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PipelineError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise PipelineError(f"{name} must be in {lo}..{hi}, got {value}")
    return int(value)


def _checked_output(images: torch.Tensor, latents: torch.Tensor) -> None:
    """Never hand out a black image for a NaN: a non-finite result is an error that says where to look."""
    if not (bool(torch.isfinite(latents).all()) and bool(torch.isfinite(images).all())):
        raise PipelineError(
            "the result is not finite (NaN/inf): the model's weights or the inputs are broken, or the "
            "optimisation diverged (fewer steps, a lower learning rate, or float32 weights)"
        )


def _steps(steps: int | None, optimization: OptimizationConfig | None) -> int:
    if steps is None:
        steps = optimization.steps if optimization is not None else 0
    return _integer("steps", steps, 0, MAX_STEPS)


def _pils(t: torch.Tensor) -> list[Image.Image]:
    return list(to_pil(t.detach().float().cpu()))


def _align_face(img: Image.Image) -> Image.Image:
    """The FFHQ crop of the photo's largest face (:mod:`tedigan.data.align`; MTCNN landmarks, offline weights)."""
    from tedigan.data.align import NoFaceFound, align_face

    try:
        return align_face(img)
    except NoFaceFound:
        raise PipelineError(
            "--align found no face in the image; run without --align to centre-crop it"
        ) from None
    except ImportError as err:
        raise PipelineError(str(err)) from None
