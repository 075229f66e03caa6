"""How a prompt moves the pipeline's codes (TediGAN's control mechanism, Xia et al. CVPR 2021, section 3.3):
the prompt read once by the vocabulary, its text code, the W+ layers it selects (the layer map) and the edit
mode's move of those layers (``mix`` / ``delta`` / ``prototype``).

:class:`TextControl` holds these steps as methods of :class:`~tedigan.pipeline.pipeline.TediGANPipeline` (its
base class): they read the pipeline's text encoder, vocabulary, layer map and prototypes.
"""

from __future__ import annotations

import torch

from tedigan.editing.directions import text_direction
from tedigan.editing.mixing import edit_codes, shift_codes
from tedigan.editing.prototypes import shift_to_prototypes
from tedigan.pipeline.inputs import PipelineError, PromptReading, read_prompt

__all__ = ["TextControl"]


class TextControl:
    """The prompt-reading and code-moving steps of the pipeline (a base class of :class:`TediGANPipeline`)."""

    def read_prompt(self, prompt: str) -> dict[str, str]:
        """``{attribute: value}`` the pipeline's vocabulary reads in ``prompt``; raises
        :class:`PromptNotUnderstood` when it reads nothing (``{}`` for pipelines without a vocabulary)."""
        return read_prompt(prompt, self.vocabulary).asked

    def _reading(self, prompt: str | PromptReading, required: bool = True) -> PromptReading:
        return (
            prompt
            if isinstance(prompt, PromptReading)
            else read_prompt(prompt, self.vocabulary, required=required)
        )

    def _text_code(self, reading: PromptReading) -> torch.Tensor:
        if self.text_encoder is None:
            raise PipelineError("this pipeline has no text_encoder: train the text stage (bash train_all.sh)")
        return self.text_encoder.encode_text([reading.text]).to(self.device)

    def select_layers(
        self, prompt: str | PromptReading, w_text: torch.Tensor, w_ref: torch.Tensor
    ) -> list[int]:
        """W+ layers for ``prompt``: the layer map's layers of the attributes the vocabulary reads in it;
        otherwise (no layer map, or no layers for those attributes) the layers the text code moves most from
        ``w_ref``. A prompt the vocabulary cannot read is refused (:class:`PromptNotUnderstood`)."""
        from tedigan.editing.layer_analysis import layers_for_attributes, top_moved_layers

        reading = self._reading(prompt)
        if self.layer_map is None:
            return top_moved_layers(w_text, w_ref, max(1, self.num_ws // 2))
        return layers_for_attributes(reading.asked, self.layer_map, w_text=w_text, w_ref=w_ref)

    def text_direction(
        self, prompt: str | PromptReading, phrases: int = 4, w_text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The W+ direction the ``"delta"`` mode adds to the image's code, ``[1, num_ws, w_dim]``
        (:func:`tedigan.editing.directions.text_direction`): from the mean text code of the other values'
        phrases (of every attribute the vocabulary reads in the prompt) to the prompt's own text code ``w_text``
        (computed when not given). A prompt that negates an attribute does not describe the result (a sentence
        encoder reads "stop smiling" close to "smiling"): then the asked values' own phrases stand in for it."""
        if self.vocabulary is None or self.text_encoder is None:
            raise PipelineError("a text direction needs the pipeline's vocabulary (its phrases per value)")
        reading = self._reading(prompt)
        if reading.negated:
            w_text = None
        elif w_text is None:
            w_text = self._text_code(reading)
        return text_direction(self.text_encoder, self.vocabulary, reading.asked, w_text, phrases).to(
            self.device
        )

    def _move(
        self,
        w_src: torch.Tensor,
        w_text: torch.Tensor,
        reading: PromptReading,
        layers: list[int],
        mode: str,
        strength: float,
    ) -> torch.Tensor:
        """The edit mode's move of ``layers`` of the image codes: from the text code (``mix``), along
        :meth:`text_direction` (``delta``) or between value prototypes (``prototype``)."""
        if mode == "prototype":
            return shift_to_prototypes(w_src, self.prototypes, reading.asked, layers, strength)
        if mode == "delta":
            return shift_codes(w_src, self.text_direction(reading, w_text=w_text), layers, strength)
        return edit_codes(w_src, w_text, layers, strength)
