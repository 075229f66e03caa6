"""What every style-based generator here shares: the mapping's broadcast and truncation, and the generator's
interface (sizes from its config, style mixing, the mean style) that editing, inversion and the metrics use.

:class:`~tedigan.models.stylegan2.Generator` (StyleGAN2 / StyleGAN1 / SWAGAN) and
:class:`~tedigan.models.ports.mobilestylegan.MobileStyleGAN` build on these; a mapping subclass implements ``embed``
(z -> w), a generator subclass has ``config`` (``num_ws``, ``z_dim``, ``w_dim``, ``resolution``,
``img_channels``), ``mapping`` and ``synthesis``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StyleGenerator", "StyleMapping", "check_ws", "truncate"]


def truncate(
    ws: torch.Tensor, w_avg: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
) -> torch.Tensor:
    """The truncation trick: ``w_avg + psi * (ws - w_avg)`` on all W+ layers, or the first ``truncation_cutoff``."""
    if truncation_psi == 1:
        return ws
    avg = w_avg.to(ws.dtype)
    if truncation_cutoff is None:
        return avg.lerp(ws, truncation_psi)
    ws = ws.clone()
    ws[:, :truncation_cutoff] = avg.lerp(ws[:, :truncation_cutoff], truncation_psi)
    return ws


def check_ws(ws: torch.Tensor, num_ws: int, w_dim: int) -> None:
    if ws.ndim != 3 or ws.shape[1] != num_ws or ws.shape[2] != w_dim:
        raise ValueError(f"synthesis expects ws of shape [B, {num_ws}, {w_dim}], got {tuple(ws.shape)}")


class StyleMapping(nn.Module):
    """z -> w (``embed``, per subclass), broadcast to ``num_ws`` W+ layers and truncated about ``w_avg``.

    With ``w_avg_beta`` set, ``w_avg`` tracks the mean w in training mode (``w_avg <- lerp(mean_batch(w), w_avg,
    beta)``); ``None`` means a fixed mean style (a pretrained network), which ``update_w_avg=True`` refuses."""

    num_ws: int
    w_avg: torch.Tensor
    w_avg_beta: float | None = None

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def truncate(
        self, ws: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """``w_avg + psi * (ws - w_avg)`` on all layers, or only the first ``truncation_cutoff``."""
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def forward(
        self,
        z: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool | None = None,
    ) -> torch.Tensor:
        """z -> ws ``[B, num_ws, w_dim]``; ``update_w_avg`` None: update in training mode (when tracked)."""
        w = self.embed(z)
        if self.w_avg_beta is None:
            if update_w_avg:
                raise ValueError(f"{type(self).__name__}'s w_avg is fixed: it cannot be updated")
        elif self.training if update_w_avg is None else update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        return self.truncate(ws, truncation_psi, truncation_cutoff)


class StyleGenerator:
    """Mixin: the sizes of a style-based generator (from its ``config``), style mixing and the mean style."""

    @property
    def num_ws(self) -> int:
        return self.config.num_ws

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def w_dim(self) -> int:
        return self.config.w_dim

    @property
    def resolution(self) -> int:
        return self.config.resolution

    @property
    def img_channels(self) -> int:
        return self.config.img_channels

    def mix(
        self, ws1: torch.Tensor, ws2: torch.Tensor, crossover_layer: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Style mixing: layers ``< crossover_layer`` from ``ws1``, the rest from ``ws2``.

        Inputs may be ``[B, w_dim]`` (broadcast) or ``[B, num_ws, w_dim]``. ``crossover_layer`` is an int,
        a ``[B]`` tensor (per-sample crossover), or None for a random per-sample crossover in
        ``[1, num_ws - 1]`` (mixing regularisation).
        """
        ws1, ws2 = (w.unsqueeze(1).expand(-1, self.num_ws, -1) if w.ndim == 2 else w for w in (ws1, ws2))
        check_ws(ws1, self.num_ws, self.w_dim)
        check_ws(ws2, self.num_ws, self.w_dim)
        idx = torch.arange(self.num_ws, device=ws1.device)
        if crossover_layer is None:
            crossover_layer = torch.randint(1, self.num_ws, (ws1.shape[0],), device=ws1.device)
        if isinstance(crossover_layer, torch.Tensor):
            take_first = idx[None, :] < crossover_layer.to(ws1.device).reshape(-1, 1)
        else:
            take_first = (idx < int(crossover_layer))[None, :]
        return torch.where(take_first[..., None], ws1, ws2)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of ``n`` mapped ``torch.randn`` samples, ``[w_dim]`` (rosinality's ``mean_latent`` returns
        ``[1, w_dim]``)."""
        device = self.mapping.w_avg.device
        total = torch.zeros(self.w_dim, device=device, dtype=torch.float64)
        for start in range(0, n, 4096):
            z = torch.randn(min(4096, n - start), self.z_dim, generator=generator).to(device)
            total += self.mapping.embed(z).double().sum(dim=0)
        return (total / n).to(self.mapping.w_avg.dtype)
