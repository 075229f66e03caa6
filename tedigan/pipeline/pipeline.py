"""The one pipeline object: text-guided editing, text-to-image and sketch/label-to-image with trained parts.

The data flow follows TediGAN (Xia et al., CVPR 2021): the image encoder inverts the input into W+, the text
encoder maps the prompt into W+, the layer map picks the W+ layers that carry what the prompt names, and the
edit mode moves those layers of the image's code (``mix``: :func:`tedigan.editing.mixing.edit_codes` takes them
from the text code). With ``steps > 0`` the moved code is refined by instance-level optimisation
(:func:`tedigan.editing.optimization.optimize_latent`): pixel and LPIPS losses to the source *outside the region
the edit changed* (:func:`change_mask` of ``G(edited)`` vs ``G(inverted)``), the encoder regulariser
``‖w − E(G(w))‖²`` and the distance to the moved code on the selected layers, so the edit stays while the rest
of the face moves back towards the source. With ``fidelity="faithful"`` the image is first inverted faithfully
(:func:`tedigan.editing.faithful.faithful_invert`: codes and a tuned generator copy fitted to the image) and the
edit is rendered by that copy. Every call checks its inputs first (:mod:`tedigan.pipeline.inputs`), reads the
prompt once, and checks every image before it returns it (:mod:`tedigan.pipeline.quality`: never a flat,
saturated, checkered or non-finite image).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from tedigan.editing.mixing import as_wplus, edit_codes, text_to_image_codes
from tedigan.editing.optimization import OptimizationConfig, change_mask
from tedigan.pipeline import folder as folder_io
from tedigan.pipeline.folder import PARTS, PipelineDefaults
from tedigan.pipeline.inputs import (
    MAX_IMAGES,
    MAX_SEED,
    PSI_RANGE,
    STRENGTH_RANGE,
    PipelineError,
    RenderWarning,
    check_boundaries,
    check_domain,
    check_fidelity,
    check_image,
    check_integer,
    check_labels,
    check_latents,
    check_layers,
    check_mode,
    check_number,
    check_optimisable,
    check_prototypes,
)
from tedigan.pipeline.outputs import (
    EditOptions,
    TediGANOutput,
    decoded,
    pils,
)
from tedigan.pipeline.photos import check_face
from tedigan.pipeline.refine import Refinement
from tedigan.pipeline.regions import local_blend, local_region, neutral_chroma, region_masks
from tedigan.pipeline.text_control import TextControl

__all__ = ["GENERATE_CHUNK", "TediGANPipeline", "change_mask"]

#: codes synthesised per generator call in ``generate`` (any ``num_images`` runs in chunks of this size)
GENERATE_CHUNK = 64
_GENERATE_HINT = "check the model folder (re-assemble or retrain it), or use fewer --steps"


class TediGANPipeline(TextControl, Refinement):
    """Trained generator + image/text (+ sketch/label) encoders + layer map (see the module docs)."""

    def __init__(
        self,
        generator: Any,
        encoder: Any,
        text_encoder: Any = None,
        sketch_encoder: Any = None,
        label_encoder: Any = None,
        classifier: Any = None,
        layer_map: Any = None,
        truncation_psi: float = 0.7,
        info: dict[str, Any] | None = None,
        vocabulary: Any = None,
        domain_classifier: Any = None,
        prototypes: Any = None,
        defaults: PipelineDefaults | None = None,
        model_card: str | None = None,
        proxy_head: Any = None,
        boundaries: Any = None,
    ) -> None:
        if isinstance(layer_map, (str, Path)):
            layer_map = PARTS["layer_map"].load(Path(layer_map).parent, Path(layer_map).name, None, None)
        modules = {
            "generator": generator,
            "encoder": encoder,
            "text_encoder": text_encoder,
            "sketch_encoder": sketch_encoder,
            "label_encoder": label_encoder,
            "classifier": classifier,
            "domain_classifier": domain_classifier,
            "proxy_head": proxy_head,
        }
        folder_io.check_parts(
            {**modules, "layer_map": layer_map, "vocabulary": vocabulary, "prototypes": prototypes}
        )
        if defaults is not None and not isinstance(defaults, PipelineDefaults):
            raise PipelineError(f"defaults must be a PipelineDefaults, got {type(defaults)}")
        for name, module in modules.items():
            setattr(self, name, module.eval() if module is not None else None)
        self.layer_map, self.vocabulary, self.prototypes = layer_map, vocabulary, prototypes
        self.boundaries = boundaries
        self.truncation_psi = float(truncation_psi)
        self.defaults = defaults if defaults is not None else PipelineDefaults()
        self.info = dict(info or {})  # provenance (trained_by, stages, licence): written, never read
        self.model_card = model_card  # the folder's README.md, kept by save_pretrained
        self._losses: dict[str, Any] = {}  # loss networks loaded on first use (LPIPS nets, face identity)

    # ------------------------------------------------------------------------------------------ properties

    @property
    def num_ws(self) -> int:
        return int(self.generator.num_ws)

    @property
    def w_dim(self) -> int:
        return int(self.generator.mapping.w_avg.numel())

    @property
    def resolution(self) -> int:
        return int(self.generator.config.resolution)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.generator.parameters()).dtype

    @property
    def domain(self) -> str | None:
        """The domain this pipeline serves (its vocabulary's), e.g. ``"faces"``; None when unknown."""
        return self.vocabulary.domain if self.vocabulary is not None else None

    def components(self) -> dict[str, torch.nn.Module]:
        """The loaded trained modules by name (optional ones only when present)."""
        return {n: getattr(self, n) for n, p in PARTS.items() if p.component and getattr(self, n) is not None}

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
        for module in [*self.components().values(), *self._losses.values()]:
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
        return cls(**folder_io.load_folder(path, device, torch_dtype))

    @staticmethod
    def load_generator(
        path: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> tuple[Any, float]:
        """Only the generator of a pipeline folder (and its default truncation psi): what sampling needs,
        without loading the encoders and the text model."""
        return folder_io.load_generator(path, device)

    def save_pretrained(self, path: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write every component (``dtype``, e.g. ``torch.float16``, shrinks the files), the layer map,
        vocabulary, prototypes, model card and ``model_index.json``. Without ``dtype`` the components keep their
        current dtype; loading gives float32 unless ``from_pretrained(..., torch_dtype="auto")``."""
        return folder_io.save_folder(self, path, dtype)

    # ------------------------------------------------------------------------------------------ the parts

    def check_domain(self, images: torch.Tensor) -> list[str | None]:
        """Per image, the other domain it looks like (None: this pipeline's, or no judge); warns once per call
        (:class:`OutOfDomainWarning`, :func:`tedigan.pipeline.inputs.check_domain`)."""
        return check_domain(self.domain_classifier, self.domain, images)

    def _images(self, image: Any, mode: str = "RGB", align: bool = False) -> torch.Tensor:
        return check_image(
            image, self.resolution, mode=mode, align=align, device=self.device, dtype=self.dtype
        )

    def _faces(self, image: Any, face: Any, progress: bool) -> tuple[torch.Tensor, Any]:
        """Images cut into their faces (:func:`tedigan.pipeline.photos.align_photos`, one batch item per face)
        -> ``(the crops as a batch, the AlignedPhotos)``."""
        from tedigan.pipeline.photos import ALIGN_SIZE, align_photos

        aligned = align_photos(image, face, max(ALIGN_SIZE, self.resolution), progress=progress)
        return self._images(aligned.crops), aligned

    def render_sizes(self, generator: Any = None) -> list[int]:
        """The image sizes :meth:`decode` renders at: the pipeline's own, and with a generator that renders
        at other sizes (MobileStyleGAN's ``synthesis(ws, resolution=r)``) every power of two from 64 to 1024."""
        import inspect

        G = generator if generator is not None else self.generator
        if "resolution" not in inspect.signature(G.synthesis.forward).parameters:
            return [self.resolution]
        return sorted({self.resolution, *(2**k for k in range(6, 11))})

    def _latents(self, latents: Any) -> torch.Tensor:
        return check_latents(latents, self.num_ws, self.w_dim).to(self.device, self.dtype)

    def _fidelity(self, opts: EditOptions, has_image: bool) -> str:
        """The fidelity of this call: the asked one, else the model's default (``fast`` without an image)."""
        fidelity = opts.fidelity or (self.defaults.fidelity if has_image else "fast")
        if fidelity == "faithful" and self.dtype != torch.float32:
            raise PipelineError(
                f"the faithful inversion needs float32 weights, the pipeline is {self.dtype}: call "
                "pipe.to(torch.float32) first, or use fidelity='fast'"
            )
        return check_fidelity(fidelity)

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
        # 1. check the call's own arguments and draw the seed
        if output_type not in ("pil", "pt"):
            raise PipelineError(f"output_type must be 'pil' or 'pt', got {output_type!r}")
        if generator is not None:
            if "seed" in kwargs:
                raise PipelineError("give either generator= or seed=, not both")
            kwargs["seed"] = int(torch.randint(0, MAX_SEED, (1,), generator=generator).item())
        # 2. edit an image or its codes, or generate
        if image is not None or latents is not None:
            out = self.edit(image, prompt, latents=latents, **kwargs)
        else:
            out = self.generate(prompt, num_images=num_images, **kwargs)
        # 3. decode to the asked output type (by the tuned generators when the call tuned any)
        if output_type == "pt":
            pt = self._render(out.latents.to(self.device, self.dtype), out.tuned_generators)
            out.images = ((pt.float().clamp(-1, 1) + 1) / 2).cpu()  # type: ignore[assignment]
        return out

    def invert(
        self,
        image: Any,
        *,
        align: bool = False,
        face: Any = 0,
        steps: int = 0,
        pti_steps: int = 0,
        seed: int = 0,
        progress: bool = False,
        fidelity: str | None = None,
    ) -> TediGANOutput:
        """Encode image(s) into W+ and reconstruct them; ``steps > 0`` then refines the codes by instance-level
        optimisation (pixel + LPIPS to the image, the encoder regulariser), as in-domain inversion does;
        ``pti_steps > 0`` then tunes a generator copy per image around its code (pivotal tuning) and renders
        with it (``tuned_generators`` of the output). ``fidelity="faithful"`` (``None``: the model's default)
        inverts faithfully instead (:class:`EditOptions`): ``latents`` are the faithful codes, rendered by
        ``tuned_generators``; ``source_latents`` stay the encoder's codes it started from. ``images`` and
        ``reconstructions`` are the same renders. ``align``/``face``: as :meth:`edit`."""
        start = time.perf_counter()
        # 1. check the inputs
        opts = EditOptions(
            steps=steps, pti_steps=pti_steps, seed=seed, progress=progress, fidelity=fidelity
        ).checked(True)
        fidelity = self._fidelity(opts, True)
        check_optimisable(max(opts.steps, opts.pti_steps), self.dtype)
        check_face(face)
        x, aligned = self._faces(image, face, progress) if align else (self._images(image), None)
        self.check_domain(x)
        # 2. invert: the encoder, then optionally faithfully (codes and a generator copy fitted to the image)
        with torch.no_grad():
            w_enc = w = self.encoder(x)
        losses: list[dict[str, Any]] = []
        tuned = None
        if fidelity == "faithful":
            w, tuned, rec, losses = self._faithful(x, w_enc, opts)
        # 3. optionally optimise the code towards the image, 4. or tune a generator to it
        if opts.steps > 0:
            w, rec, more = self._refine(w, x, w, [], None, opts, tuned)
            losses += more
        elif fidelity == "fast":
            rec = self._render(w)
        if fidelity == "fast" and opts.pti_steps > 0:
            rec, tuned = self._pivotal(w, x, w, opts)
        # 5. decode (checked: never a flat, saturated, checkered or non-finite image)
        images = decoded(rec, w, "the reconstruction")
        return TediGANOutput(
            images=images,
            latents=w,
            source_images=pils(x),
            source_latents=w_enc,
            losses=losses,
            seconds=time.perf_counter() - start,
            tuned_generators=tuned,
            reconstructions=list(images),
            alignments=aligned.alignments if aligned else None,
            photos=aligned.photos if aligned else None,
        )

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, generator: Any = None, resolution: int | None = None
    ) -> list[Image.Image]:
        """W+ codes ``[B, num_ws, w_dim]`` (e.g. ``out.source_latents``) -> images; ``generator``: another
        generator of this pipeline's code space to render them with (e.g. one of ``out.tuned_generators``);
        ``resolution``: render at another size, one of :meth:`render_sizes` (MobileStyleGAN: 64..1024)."""
        # 1. check the codes and the size, 2. decode (checked)
        w = self._latents(latents)
        G = generator if generator is not None else self.generator
        size = {}
        if resolution is not None and resolution != self.resolution:
            if resolution not in self.render_sizes(G):
                raise PipelineError(
                    f"this generator renders at {', '.join(map(str, self.render_sizes(G)))} px, not {resolution!r}"
                )
            size = {"resolution": int(resolution)}
        return decoded(
            G.synthesis(w.to(next(G.parameters()).dtype), noise_mode="const", **size),
            w,
            "the decoded image",
            "check the codes and the generator they are rendered with",
        )

    def edit(
        self,
        image: Any,
        prompt: str,
        *,
        latents: torch.Tensor | None = None,
        strength: float = 1.0,
        layers: Sequence[int] | None = None,
        mode: str | None = None,
        align: bool = False,
        face: Any = 0,
        options: EditOptions | None = None,
        **knobs: Any,
    ) -> TediGANOutput:
        """Edit image(s) as ``prompt`` says: invert, move the W+ layers of what the prompt names as ``mode``
        says (``strength`` 0..1 scales the move, up to 2 extrapolates), then optionally refine (``options``).

        ``latents`` (W+ codes, e.g. saved by ``invert``) replace the inversion: pass ``image=None``; the source
        is then their rendering. ``layers`` overrides the layer map's choice. ``mode``: ``"mix"`` (TediGAN: the
        layers come from the text code), ``"delta"`` (they move along :meth:`text_direction`, from the other
        values' phrases to the prompt's own code) or ``"prototype"`` (the code moves from the mean text code of
        the image's nearest value to the asked value's, :mod:`tedigan.editing.prototypes`; all layers unless
        ``layers`` is given); None: the model's ``defaults.edit_mode``. ``options`` (:class:`EditOptions`) or
        its fields as keywords (``fidelity=, steps=30, seed=0, optimization=, pti_steps=, progress=,
        callback=, faithful=``) set the inversion's fidelity, the instance-level optimisation and pivotal
        tuning; keywords win over ``options``.

        ``fidelity``: ``"fast"`` inverts with the encoder (seconds); ``"faithful"`` fits the codes and a
        generator copy to the image first (:func:`~tedigan.editing.faithful.faithful_invert`: by default every
        step at full resolution within a 50 s time budget, about a minute per face on a CPU core; with
        ``faithful=FaithfulConfig(use_head=True)`` on the fast route of the faces model's ``proxy_head``,
        and without a ``proxy_head`` such a recipe runs every step at full resolution, slower) and renders the
        edit with that copy (``tuned_generators``); None: the model's ``defaults.fidelity`` (``"fast"`` with
        ``latents=``).
        ``reconstructions`` of the output are the source's code rendered the same way: what the edit began
        from. Every returned image is checked (:func:`~tedigan.pipeline.quality.check_images`).

        ``align=True`` edits the FFHQ crops of a photo's faces (MTCNN; :mod:`tedigan.pipeline.photos`), one
        batch item per face: ``face`` picks them (``0`` / ``"largest"``, ``"all"``, an index, or
        :class:`~tedigan.data.align.Face` objects whose landmarks are known), and the output's ``alignments``
        and ``photos`` say where each came from (:func:`tedigan.pipeline.photos.paste_edits` puts the edits
        back). A photo without a face is a :class:`PipelineError`."""
        start = time.perf_counter()
        # 1. check the inputs (before any work) and read the prompt once
        unknown = sorted(set(knobs) - {f.name for f in fields(EditOptions)})
        if unknown:
            raise TypeError(f"edit() got unexpected keyword arguments {unknown}")
        if (image is None) == (latents is None):
            raise PipelineError("give either an image or latents= (W+ codes), not both and not neither")
        opts = replace(options or EditOptions(), **knobs).checked(image is not None)
        fidelity = self._fidelity(opts, image is not None)
        strength = check_number("strength", strength, *STRENGTH_RANGE)
        check_optimisable(max(opts.steps, opts.pti_steps), self.dtype)
        mode = check_mode(mode if mode is not None else self.defaults.edit_mode)
        chosen = given = check_layers(layers, self.num_ws) if layers is not None else None
        reading = self._reading(prompt, required=chosen is None or mode != "mix")
        if mode == "prototype":  # refused before any work when the model cannot do it
            check_prototypes(self.prototypes, reading)
            chosen = chosen if chosen is not None else list(range(self.num_ws))
        if mode == "boundary":
            check_boundaries(self.boundaries, reading)
            chosen = chosen if chosen is not None else self.boundaries.layers_of(reading.asked, self.num_ws)
        w_given = self._latents(latents) if latents is not None else None
        check_face(face)
        x = aligned = None
        if w_given is None:
            x, aligned = self._faces(image, face, opts.progress) if align else (self._images(image), None)
        if x is not None:
            self.check_domain(x)
        # 2. invert the image (or render the given codes as the source); faithfully: codes and generator copies
        with torch.no_grad():
            if w_given is None:
                w_src = self.encoder(x)
            else:
                w_src = w_given
                x = self.generator.synthesis(w_src, noise_mode="const").clamp(-1, 1)
        tuned, losses = None, []
        if fidelity == "faithful":
            w_src, tuned, _, losses = self._faithful(x, w_src, opts)
        with torch.no_grad():
            # 3. encode the text
            w_text = self._text_code(reading)
            # 4. move the prompt's layers of the image's code as the mode says
            if mode == "boundary":  # each attribute on its own layers, unless layers= says otherwise
                w_edit = self.boundaries.edit(w_src, reading.asked, strength, layers=given)
            else:
                if chosen is None:
                    chosen = self.select_layers(reading, w_text, w_src)
                w_edit = self._move(w_src, w_text, reading, chosen, mode, strength)
        # 5. optionally optimise the code, keeping what the move did not change
        if opts.steps > 0:
            keep = change_mask(self._render(w_src, tuned), self._render(w_edit, tuned))
            w_edit, images, more = self._refine(w_edit, x, w_edit, chosen, keep, opts, tuned)
            losses += more
        elif fidelity == "faithful" or opts.pti_steps == 0:
            images = self._render(w_edit, tuned)
        # 6. decode: with a generator tuned to the image around its code, or the pipeline's (checked)
        if fidelity == "fast" and opts.pti_steps > 0:
            images, tuned = self._pivotal(w_src, x, w_edit, opts)
        recon = self._render(w_src, tuned)
        masks, chroma = None, None
        if mode == "boundary" and local_region(reading.asked):  # confined to its region of the face
            masks = self._region_masks(recon, images)
            if masks is not None:
                chroma = neutral_chroma(reading.asked)  # gray hair: no hue
                images = local_blend(recon, images, masks, chroma)
        edited = decoded(images, w_edit, "the edited image")
        reconstructions = decoded(recon, w_src, "the reconstruction")
        return TediGANOutput(
            images=edited,
            latents=w_edit,
            layers=chosen,
            source_images=pils(x),
            source_latents=w_src,
            text_latents=w_text,
            losses=losses,
            seconds=time.perf_counter() - start,
            tuned_generators=tuned,
            reconstructions=reconstructions,
            alignments=aligned.alignments if aligned else None,
            photos=aligned.photos if aligned else None,
            masks=masks,
            chroma=chroma,
        )

    def _region_masks(self, recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor | None:
        """Soft region masks of a local edit (:mod:`tedigan.pipeline.regions`); None, with a warning, when the
        face-judge weights the masks need are not installed (the edit is then not confined)."""
        import warnings

        from tedigan import assets

        if "regions" not in self._losses:
            try:
                from tedigan.models.attribute_reader import RegionAttributeReader

                self._losses["regions"] = RegionAttributeReader.from_package(labeller=None).to(self.device)
            except assets.MissingWeightsError as err:
                warnings.warn(f"the edit is not confined to its region: {err}", RenderWarning, stacklevel=3)
                self._losses["regions"] = None
        reader = self._losses["regions"]
        return None if reader is None else region_masks(reader, recon, images)

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
        # 1. check the inputs and read the prompt once
        opts = EditOptions(steps=steps, seed=seed, optimization=optimization, progress=progress).checked(True)
        check_optimisable(opts.steps, self.dtype)
        if sketch is not None and label is not None:
            raise PipelineError("give either sketch= or label=, not both")
        psi = check_number(
            "truncation_psi", self.truncation_psi if truncation_psi is None else truncation_psi, *PSI_RANGE
        )
        chosen = check_layers(layers, self.num_ws) if layers is not None else None
        if prompt is None and sketch is None and label is None:
            raise PipelineError("empty text: give a prompt (or a sketch= / label= input)")
        if prompt is None and (opts.steps or layers is not None):
            raise PipelineError("steps and layers need a prompt to mix into the sketch/label code")
        reading = self._reading(prompt, required=chosen is None) if prompt is not None else None
        # 2. invert the sketch / label map, if any
        source = source_w = None
        if sketch is not None or label is not None:
            kind = "sketch" if sketch is not None else "label"
            enc = getattr(self, f"{kind}_encoder")
            if enc is None:
                raise PipelineError(f"this pipeline has no {kind}_encoder: train it with bash train_all.sh")
            inp = (
                self._images(sketch, mode="L")
                if sketch is not None
                else check_labels(label, self.resolution, self.device)
            )
            with torch.no_grad():
                source_w = enc(inp)
            source = pils(inp) if sketch is not None else None
            if reading is None:
                with torch.no_grad():
                    images = self.generator.synthesis(source_w, noise_mode="const")
                return TediGANOutput(
                    images=decoded(images, source_w, "the generated image", _GENERATE_HINT),
                    latents=source_w,
                    source_images=source,
                    source_latents=source_w,
                    seconds=time.perf_counter() - start,
                )
        num = check_integer("num_images", num_images, 1, MAX_IMAGES) if source_w is None else len(source_w)
        # 3. encode the text and choose its layers
        w_text = self._text_code(reading)
        with torch.no_grad():
            ref = source_w if source_w is not None else self.generator.mapping.w_avg
            if chosen is None:
                chosen = self.select_layers(reading, w_text, ref)
        # 4. mix the text code into each chunk of codes, 5. optionally optimise, 6. decode
        z = torch.randn(num, int(self.generator.z_dim), generator=torch.Generator().manual_seed(opts.seed))
        starts = range(0, num, GENERATE_CHUNK)
        bar = tqdm(starts, desc="generate", unit="chunk", disable=len(starts) == 1 and not progress)
        results: list[Image.Image] = []
        codes, losses = [], []
        default = OptimizationConfig(pixel_weight=0.0, lpips_weight=0.0, encoder_weight=1.0)
        for i in bar:
            with torch.no_grad():
                if source_w is not None:
                    w = edit_codes(source_w[i : i + GENERATE_CHUNK], w_text, chosen)
                else:
                    zi = z[i : i + GENERATE_CHUNK]
                    w = text_to_image_codes(w_text, self.generator, chosen, len(zi), truncation_psi=psi, z=zi)
                images = self.generator.synthesis(w, noise_mode="const") if opts.steps == 0 else None
            if opts.steps > 0:
                chunk_opts = replace(opts, progress=progress and len(starts) == 1)
                result = self._optimise(w, None, as_wplus(w).detach(), chosen, None, chunk_opts, default)
                w, images = result.w, result.image
                losses.extend(result.losses)
            results.extend(decoded(images, w, "the generated image", _GENERATE_HINT))
            codes.append(w.detach())
        return TediGANOutput(
            images=results,
            latents=torch.cat(codes),
            layers=chosen,
            source_images=source,
            source_latents=source_w,
            text_latents=w_text,
            losses=losses,
            seconds=time.perf_counter() - start,
        )
