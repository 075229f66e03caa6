"""The web demo: ``tedigan demo`` serves it on http://127.0.0.1:7860.

Offline (Gradio, no analytics, system fonts). Tabs:

- **Edit**: upload an image (or take the example), type what to change, pick strength and optimisation
  steps; the page shows the reconstruction beside the edit and which W+ layers the prompt took.
- **Text to image**: a prompt, a number of faces and a seed.
- **Sketch / labels**: a line drawing or a part-label map, with an optional prompt.
- **Faces (FFHQ)**: seeded photo-real samples from MobileStyleGAN, when ``random-face`` is installed
  (research / non-commercial weights).

Every error a user can fix (an unreadable image, a prompt the model does not understand, missing weights)
is shown in the page as one line; optimisation shows a progress bar.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "face.png"
#: prompts offered under the edit box (the faces model's vocabulary: hair colour, eyewear, beard, make-up, ...)
PROMPT_EXAMPLES = (
    "blond hair",
    "add glasses",
    "give him a beard",
    "red lipstick",
    "sunglasses",
    "grey hair",
    "remove the glasses",
    "make them smile",
)

_PIPES: dict[str, Any] = {}  # pipelines by --model
# bare generators by name (tedigan.domains.NAMED_GENERATORS), apart from the pipelines
_GENERATORS: dict[str, Any] = {}


def _pipe(model: str | None):
    from tedigan.pipeline import TediGANPipeline

    key = model or ""
    if key not in _PIPES:
        _PIPES[key] = TediGANPipeline.from_pretrained(model or None)
    return _PIPES[key]


def _guard(fn):
    """Run ``fn``; a user error becomes ``gr.Error`` (one line in the page, never a stack trace)."""
    import functools

    import gradio as gr

    from tedigan import cli

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except cli.user_errors() as err:
            raise gr.Error(
                str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            ) from None

    return wrapped


def build_demo(model: str | None = None):
    """The Gradio app for the pipeline folder ``model`` (None: the shipped model)."""
    import gradio as gr

    from tedigan import cli

    def upscale(img, factor: int = 8):
        return cli.upscale(img, max(1, factor))

    @_guard
    # gradio fills a gr.Progress default with the page's progress bar (its documented pattern)
    def edit(image, prompt: str, strength: float, steps: int, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        if image is None:
            raise gr.Error("upload an image first (or press 'use the example')")
        cli.check_text(prompt, 'say what to change, e.g. "blond hair"')
        pipe = _pipe(model)
        # the faces model inverts faithfully by default (a tuned generator, a minute or more): show its progress
        faithful = pipe.defaults.fidelity == "faithful"
        out = pipe.edit(
            image, prompt, strength=float(strength), steps=int(steps), progress=int(steps) > 0 or faithful
        )
        rec = out.reconstructions[0]  # rendered by the generator that rendered the edit
        note = f"W+ layers {out.layers} from the text; {int(steps)} optimisation steps; {out.seconds:.2f} s"
        return upscale(rec), upscale(out.images[0]), note

    @_guard
    def text_to_image(prompt: str, num: int, seed: int):
        cli.check_text(prompt, 'describe the face, e.g. "a smiling woman with red hair"')
        out = _pipe(model).generate(prompt, num_images=int(num), seed=int(seed))
        return [upscale(im) for im in out.images], f"W+ layers {out.layers}; {out.seconds:.2f} s"

    @_guard
    def from_drawing(kind: str, drawing, prompt: str):
        if drawing is None:
            raise gr.Error("upload a sketch or a label map first")
        text = prompt if prompt and prompt.strip() else None
        if text is not None:
            cli.check_text(text, "describe the face")
        arg = {"sketch": drawing.convert("L")} if kind == "sketch" else {"label": drawing.convert("L")}
        out = _pipe(model).generate(text, **arg)
        return upscale(out.images[0])

    @_guard
    def faces(seeds: str, psi: float):
        import torch

        from tedigan.data.io import to_pil
        from tedigan.domains import DOMAINS
        from tedigan.models.latents import seed_latents
        from tedigan.models.ports.mobilestylegan import MobileStyleGAN

        wanted = cli.parse_ranges(seeds, "seeds", cli.MAX_SEED, 16)
        name = DOMAINS["faces"].generator
        if name not in _GENERATORS:
            _GENERATORS[name] = MobileStyleGAN.from_package(resolution=256)
        G = _GENERATORS[name]
        with torch.no_grad():
            images = G.synthesis(seed_latents(G, wanted, float(psi)), resolution=256).clamp(-1, 1)
        return list(to_pil(images.cpu()))

    with gr.Blocks(title="tedigan", analytics_enabled=False) as demo:
        gr.Markdown("# tedigan — text-guided face editing (TediGAN on StyleGAN2)")
        with gr.Tab("Edit"):
            with gr.Row():
                source = gr.Image(type="pil", label="image", elem_id="edit-input")
                recon = gr.Image(type="pil", label="reconstruction", elem_id="edit-recon", interactive=False)
                edited = gr.Image(type="pil", label="edit", elem_id="edit-output", interactive=False)
            prompt = gr.Textbox(label="what to change", placeholder="blond hair", elem_id="edit-prompt")
            with gr.Row():
                strength = gr.Slider(0, 2, value=1, step=0.05, label="strength")
                steps = gr.Slider(0, 200, value=0, step=1, label="optimisation steps (0 = encoder only)")
            with gr.Row():
                example = gr.Button("use the example", elem_id="edit-example")
                go = gr.Button("edit", variant="primary", elem_id="edit-button")
            gr.Examples(examples=[[p] for p in PROMPT_EXAMPLES], inputs=[prompt], label="try")
            info = gr.Markdown(elem_id="edit-info")
            example.click(lambda: str(EXAMPLE), outputs=source)
            go.click(edit, [source, prompt, strength, steps], [recon, edited, info])
        with gr.Tab("Text to image"):
            t_prompt = gr.Textbox(
                label="description", placeholder="a smiling man with a beard", elem_id="t2i-prompt"
            )
            with gr.Row():
                t_num = gr.Slider(1, 16, value=4, step=1, label="faces")
                t_seed = gr.Number(value=0, precision=0, label="seed")
            t_go = gr.Button("generate", variant="primary", elem_id="t2i-button")
            t_gallery = gr.Gallery(label="faces", columns=4, elem_id="t2i-output")
            t_info = gr.Markdown()
            t_go.click(text_to_image, [t_prompt, t_num, t_seed], [t_gallery, t_info])
        with gr.Tab("Sketch / labels"):
            kind = gr.Radio(["sketch", "label map"], value="sketch", label="input")
            drawing = gr.Image(type="pil", label="drawing")
            d_prompt = gr.Textbox(label="text (optional)", placeholder="pink hair")
            d_go = gr.Button("generate", variant="primary")
            d_out = gr.Image(type="pil", label="result", interactive=False)
            d_go.click(
                lambda k, d, p: from_drawing("sketch" if k == "sketch" else "label", d, p),
                [kind, drawing, d_prompt],
                d_out,
            )
        with gr.Tab("Faces (FFHQ)"):
            gr.Markdown(
                "Photo-real samples from MobileStyleGAN (FFHQ; **research / non-commercial weights**, from the "
                "`random-face` package). Editing photos comes with the trained face encoders."
            )
            with gr.Row():
                f_seeds = gr.Textbox(value="0-3", label="seeds")
                f_psi = gr.Slider(0, 1, value=0.7, step=0.05, label="truncation ψ")
            f_go = gr.Button("sample", variant="primary")
            f_gallery = gr.Gallery(label="faces", columns=4)
            f_go.click(faces, [f_seeds, f_psi], f_gallery)
    return demo


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Load the pipeline ``model`` (a bad one fails here, before serving), then serve the demo until stopped."""
    import gradio as gr

    _pipe(model)
    theme = gr.themes.Default(font=["sans-serif"], font_mono=["monospace"])  # no web fonts: offline
    build_demo(model).queue().launch(server_name=host, server_port=port, theme=theme)
