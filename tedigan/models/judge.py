"""One interface for every attribute judge: the avatar classifier and the real-face networks alike.

A judge reads images — ``[B, 3, H, W]`` RGB in [-1, 1], any resolution (each judge resizes or crops what it
needs; face judges expect FFHQ-aligned faces) — and returns a :class:`Judgement`: probabilities over the
named values of each categorical attribute (``attribute_values``: attribute → value names, in probability
order),
continuous readings such as an age in years, and, for identity networks, an embedding with a distance and
a same-person threshold. Layer analysis, metrics and optimisation take any judge, so they never need to
know which domain they serve. Judging is differentiable (a judge can be a loss) unless a judge says not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["BinnedJudge", "Judge", "Judgement", "judge_probs", "values_of"]


@dataclass
class Judgement:
    """What a judge says about a batch of images.

    ``probs[a]``: ``[B, len(attribute_values[a])]`` probabilities (rows sum to 1). ``values[name]``: ``[B]`` continuous
    readings (e.g. ``"age"`` in years). ``embedding``: ``[B, D]`` identity descriptors or ``None``.
    """

    probs: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    embedding: torch.Tensor | None = None

    def labels(self, attribute_values: dict[str, list[str]]) -> dict[str, list[str]]:
        """The most probable value name of each attribute, per image."""
        return {a: [attribute_values[a][i] for i in p.argmax(dim=1).tolist()] for a, p in self.probs.items()}


class Judge(torch.nn.Module):
    """Base class of judges. Subclasses set ``attribute_values`` (empty for pure identity networks) and
    implement :meth:`judge`; identity networks also set ``embedding_dim`` and ``same_person_threshold``."""

    attribute_values: dict[str, list[str]] = {}
    embedding_dim: int | None = None
    #: distance (see :meth:`distance`) below which two embeddings are taken as one person
    same_person_threshold: float | None = None

    def judge(self, images: torch.Tensor) -> Judgement:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> Judgement:
        return self.judge(images)

    @staticmethod
    def check_images(images: torch.Tensor) -> None:
        if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"a judge reads RGB images [B, 3, H, W] in [-1, 1], got {shape}")

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance between embeddings ``[B, D]`` (Euclidean unless a judge says otherwise)."""
        return (a - b).norm(dim=-1)


class BinnedJudge(Judge):
    """A judge plus one categorical attribute binned from one of its continuous readings: ``attribute``'s
    value ``k`` covers ``reading`` in ``[bound_{k-1}, bound_k)`` (e.g. age groups from an age in years).

    ``bins``: ``(value name, upper bound)`` pairs, ascending, the last bound ``inf``. The probabilities are soft
    (differences of sigmoids of width ``softness``), so the binned attribute stays differentiable."""

    def __init__(
        self, judge: Judge, reading: str, attribute: str, bins: list[tuple[str, float]], softness: float = 2.0
    ) -> None:
        super().__init__()
        if not bins or bins[-1][1] != float("inf") or any(a[1] >= b[1] for a, b in zip(bins, bins[1:])):
            raise ValueError(f"bins must be ascending (name, bound) pairs ending with inf, got {bins}")
        if softness <= 0:
            raise ValueError(f"softness must be > 0, got {softness}")
        self.inner, self.reading, self.attribute = judge, reading, attribute
        self.bounds = [b for _, b in bins[:-1]]
        self.softness = float(softness)
        self.attribute_values = {**values_of(judge), attribute: [name for name, _ in bins]}
        self.embedding_dim = judge.embedding_dim
        self.same_person_threshold = judge.same_person_threshold

    def judge(self, images: torch.Tensor) -> Judgement:
        out = self.inner.judge(images)
        x = out.values[self.reading].float()
        # P(reading >= bound) for each inner bound, with P = 1 below the first and 0 above the last bin
        above = [torch.ones_like(x), *(torch.sigmoid((x - b) / self.softness) for b in self.bounds)]
        above.append(torch.zeros_like(x))
        probs = torch.stack([above[k] - above[k + 1] for k in range(len(above) - 1)], dim=1)
        return Judgement({**out.probs, self.attribute: probs}, dict(out.values), out.embedding)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.inner.distance(a, b)


def judge_probs(judge: object, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{attribute: probabilities [B, V]}`` from a :class:`Judge`, or from any callable returning
    ``{attribute: logits}`` (a bare classifier network, a test double)."""
    if isinstance(judge, Judge):
        return judge.judge(images).probs
    out = judge(images)  # type: ignore[operator]
    if not isinstance(out, dict):
        raise TypeError("a judge must be a tedigan Judge or return {attribute: logits [B, num_values]}")
    return {a: v.float().softmax(dim=1) for a, v in out.items()}


def values_of(judge: object) -> dict[str, list[str]] | None:
    """The judge's ``attribute_values`` (None when it does not name its values)."""
    values = getattr(judge, "attribute_values", None)
    return {a: list(v) for a, v in values.items()} if isinstance(values, dict) and values else None
