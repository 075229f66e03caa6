"""A fast differentiable route through MobileStyleGAN: the synthesis up to an intermediate block, then a small
distilled head that stands in for the remaining blocks.

Most of a full-resolution optimisation step is not spent where the image's identity is decided: the 256 and 512 px
blocks (and LPIPS at 256 px) cost several times what the blocks up to 64 px features do. The route runs
:func:`route_features` (the generator's own blocks ``0..block``, exact) and :class:`ProxyHead`, trained to match
the full generator's output average-pooled to the head's resolution (``2 x`` the feature side) on generated faces:
W codes and W+ codes near their shared w (see ``tedigan.training.proxy_head``).

Head (``block = 3``: 512 channels at 64 px -> RGB at 128 px): the styles of the sites the head replaces (their
mean w) modulate its input channels and its two hidden layers, as the generator's own sites do:

* ``x = lrelu(pw1(feat * s1))``; two modulated depthwise-separable 3x3 layers (``lrelu(pw(dw(x) * s)))``;
* 12 Haar bands = ``to_bands(x) + skip(feat * s1)`` (a linear path: the least-squares head as a start), then the
  inverse Haar transform to ``3 x 2R x 2R``.

Styles start at exactly 1 (affine weights 0, biases 1). Saved as ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tedigan.models.ports.mobilestylegan import BLOCK_CHANNELS, N_BLOCKS, haar_idwt

__all__ = ["ProxyHeadConfig", "ProxyHead", "route_features", "route_image", "block_sites"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def block_sites(block: int) -> range:
    """W+ sites read by the synthesis up to and including ``block`` (0: the 4 px conv; block i: 1+3i..3+3i)."""
    return range(0, 4 + 3 * block)


def route_features(synthesis: nn.Module, ws: torch.Tensor, block: int) -> torch.Tensor:
    """MobileStyleGAN synthesis features after block ``block`` (channels-last ``[B, R, R, C]``, ``R = 8 * 2**block``),
    computed by the generator's own layers (exactly what the full forward computes there)."""
    if not 0 <= block < N_BLOCKS - 1:
        raise ValueError(f"block must be in 0..{N_BLOCKS - 2}, got {block}")
    ws = synthesis._ws(ws).to(synthesis.input.dtype)
    b = ws.shape[0]
    x = synthesis.input.expand(b, -1, -1, -1) * synthesis.conv1_style(ws[:, 0]).view(b, -1, 1, 1)
    x = F.conv2d(x, synthesis.conv1_weight, padding=1) + (
        synthesis.conv1_noise + synthesis.conv1_bias.view(-1, 1, 1)
    )
    x = F.leaky_relu(x, synthesis.slope).permute(0, 2, 3, 1).contiguous()
    for i in range(block + 1):
        x = synthesis.layers[i](x, ws[:, 1 + 3 * i : 4 + 3 * i])
    return x


@dataclass
class ProxyHeadConfig:
    """Shape of a :class:`ProxyHead`: ``block`` is the synthesis block whose output it reads (3: 64 px features,
    128 px image; 4: 128 px features, 256 px image)."""

    block: int = 3
    hidden: int = 128
    w_dim: int = 512
    num_ws: int = 23

    def __post_init__(self) -> None:
        if not 0 <= self.block < N_BLOCKS - 1:
            raise ValueError(f"block must be in 0..{N_BLOCKS - 2}, got {self.block}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")

    @property
    def in_channels(self) -> int:
        return BLOCK_CHANNELS[self.block][1]

    @property
    def feature_resolution(self) -> int:
        return 8 * 2**self.block

    @property
    def resolution(self) -> int:
        """Side of the head's image (2 x the features')."""
        return 2 * self.feature_resolution

    @property
    def first_site(self) -> int:
        """The first W+ site the head stands in for (it reads ``ws[:, first_site:]``)."""
        return block_sites(self.block).stop


class _Affine(nn.Module):
    """w -> per-channel style, exactly 1 at initialisation."""

    def __init__(self, w_dim: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, w_dim))
        self.bias = nn.Parameter(torch.ones(channels))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return F.linear(w, self.weight, self.bias)


class ProxyHead(nn.Module):
    """Features ``[B, R, R, C]`` (channels-last, :func:`route_features`) and ``ws [B, 23, 512]`` -> image
    ``[B, 3, 2R, 2R]`` approximating ``G.synthesis(ws, resolution=2R)``."""

    def __init__(self, config: ProxyHeadConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ProxyHeadConfig()
        c, h = cfg.in_channels, cfg.hidden
        self.style_in = _Affine(cfg.w_dim, c)
        self.style1 = _Affine(cfg.w_dim, h)
        self.style2 = _Affine(cfg.w_dim, h)
        self.pw_in = nn.Conv2d(c, h, 1)
        self.dw1 = nn.Conv2d(h, h, 3, padding=1, groups=h)
        self.pw1 = nn.Conv2d(h, h, 1)
        self.dw2 = nn.Conv2d(h, h, 3, padding=1, groups=h)
        self.pw2 = nn.Conv2d(h, h, 1)
        self.to_bands = nn.Conv2d(h, 12, 1)
        self.skip = nn.Conv2d(c, 12, 1)
        nn.init.zeros_(self.to_bands.weight)
        nn.init.zeros_(self.to_bands.bias)

    def styles_w(self, ws: torch.Tensor) -> torch.Tensor:
        """The w that styles the head: the mean of the sites it replaces, ``[B, w_dim]``."""
        if ws.ndim == 2:
            return ws
        return ws[:, self.config.first_site :].mean(1)

    def forward(self, features: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        w = self.styles_w(ws).to(features.dtype)
        x = features.permute(0, 3, 1, 2) * self.style_in(w)[:, :, None, None]
        skip = self.skip(x)
        x = F.leaky_relu(self.pw_in(x), 0.2)
        x = F.leaky_relu(self.pw1(self.dw1(x) * self.style1(w)[:, :, None, None]), 0.2)
        x = F.leaky_relu(self.pw2(self.dw2(x) * self.style2(w)[:, :, None, None]), 0.2)
        return haar_idwt((self.to_bands(x) + skip).contiguous(), band_major=True)

    # ------------------------------------------------------------------------------------------- saving

    def save_pretrained(
        self, folder: str | os.PathLike, metrics: dict | None = None, dtype: torch.dtype | None = None
    ) -> Path:
        """Write ``model.safetensors`` (float32, or ``dtype``) and ``config.json`` (the config, plus ``metrics``:
        by default the ones it was loaded with)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            k: v.detach().to(dtype or torch.float32).contiguous().cpu() for k, v in self.state_dict().items()
        }
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        body = {"architecture": "ProxyHead", **asdict(self.config)}
        metrics = metrics if metrics is not None else getattr(self, "metrics", None)
        if metrics:
            body["metrics"] = metrics
        (folder / CONFIG_NAME).write_text(json.dumps(body, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        map_location: str | torch.device = "cpu",
        torch_dtype: torch.dtype | str | None = None,
    ) -> ProxyHead:
        """Load a saved head (float32 whatever was saved; ``torch_dtype`` as for the pipeline's components:
        ``"auto"`` keeps the saved dtype). A missing, damaged or non-finite file raises a ``ValueError`` /
        ``FileNotFoundError`` naming it."""
        from tedigan.models.base import PretrainedModule

        folder = Path(folder)
        try:
            body = json.loads((folder / CONFIG_NAME).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{folder / CONFIG_NAME} is not valid JSON ({err})") from None
        if not isinstance(body, dict) or body.pop("architecture", None) != "ProxyHead":
            raise ValueError(f"{folder / CONFIG_NAME} does not describe a ProxyHead")
        metrics = body.pop("metrics", None)
        try:
            head = cls(ProxyHeadConfig(**body))
        except TypeError as err:
            raise ValueError(f"{folder / CONFIG_NAME} does not describe a valid ProxyHead ({err})") from None
        state = PretrainedModule.read_weights(folder)
        try:
            head.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        except RuntimeError as err:
            raise PretrainedModule.mismatch(folder, err) from None
        head.metrics = metrics  # kept by save_pretrained
        return PretrainedModule.place(head, state, map_location, torch_dtype).eval()


def route_image(synthesis: nn.Module, head: ProxyHead, ws: torch.Tensor) -> torch.Tensor:
    """The route's image ``[B, 3, head.config.resolution, ...]``: the synthesis up to ``head.config.block`` and
    the head."""
    return head(route_features(synthesis, ws, head.config.block), ws)
