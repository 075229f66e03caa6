"""Typed stage configs: YAML files in ``configs/`` + ``--key=value`` overrides + a resolved dump per run.

Every stage config is a dataclass tree (``data``, ``model``, ``train``). ``load_config`` reads a YAML file,
applies dotted overrides such as ``--train.lr=2e-3`` or ``--data.root=/data/ffhq`` with type checking, and
returns the typed object; ``save_config`` writes the resolved YAML next to a run's outputs so every result
can be reproduced from its folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from tedigan.models.classifier import ClassifierConfig
from tedigan.models.encoder import EncoderConfig
from tedigan.models.projected import ProjectedDiscriminatorConfig
from tedigan.models.stylegan2 import ARCHS, DiscriminatorConfig, GeneratorConfig
from tedigan.models.text_encoder import TextEncoderConfig
from tedigan.typed import ConfigError, from_dict, to_dict

__all__ = [
    "ClassifierStageConfig",
    "ConfigError",
    "AugmentConfig",
    "DataConfig",
    "GANLossConfig",
    "GeneratorStageConfig",
    "InversionLossConfig",
    "InversionStageConfig",
    "STAGE_CONFIGS",
    "DomainStageConfig",
    "TextLossConfig",
    "TextStageConfig",
    "TrainConfig",
    "apply_overrides",
    "dump_config",
    "load_config",
    "parse_overrides",
    "save_config",
]


#: the largest learning rate a config accepts: above it Adam diverges on every network here
MAX_LR = 1.0


def _check_lr(name: str, value: float | None) -> None:
    if value is not None and not 0 < value <= MAX_LR:
        raise ValueError(f"{name} must be in (0, {MAX_LR}], got {value}")


@dataclass
class DataConfig:
    """Where training images come from (see ``tedigan.data.make_dataset``)."""

    kind: Literal["avatars", "faces", "folder", "hf", "mmceleba"] = "avatars"
    root: str = "data/avatars64"
    resolution: int = 64
    train_split: str = "train"
    val_split: str = "val"
    num_workers: int = 0
    # avatars only: render this many faces into ``root`` first when it holds no data set yet (0 = never).
    render_if_missing: int = 0
    render_seed: int = 0

    def __post_init__(self) -> None:
        if self.resolution < 4 or self.resolution & (self.resolution - 1):
            raise ValueError(f"data.resolution must be a power of two >= 4, got {self.resolution}")
        if self.num_workers < 0 or self.render_if_missing < 0:
            raise ValueError("data.num_workers and data.render_if_missing must be >= 0")


@dataclass
class TrainConfig:
    """The shared training-loop knobs (accelerate, checkpoints, logging)."""

    output_dir: str = "outputs/run"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_accum: int = 1
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    log_every: int = 50
    eval_every: int = 500
    sample_every: int = 500
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 2
    log_with: list[str] = field(default_factory=lambda: ["jsonl"])
    # stop this run after this many minutes of training (checked on log steps) as if max_steps were reached
    # there: final evaluation, samples, checkpoint and save; a later run resumes it (null: no time limit)
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        if self.max_minutes is not None and not self.max_minutes > 0:  # NaN too
            raise ValueError(f"train.max_minutes must be > 0, got {self.max_minutes}")
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.lr <= MAX_LR:
            raise ValueError(f"train.lr must be in (0, {MAX_LR}], got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.checkpoints_total_limit < 1 or self.sample_every <= 0:
            raise ValueError("train.checkpoints_total_limit and train.sample_every must be >= 1")


@dataclass
class ClassifierStageConfig:
    """Stage ``classifier``: the attribute judge used by every later metric."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(output_dir="outputs/classifier"))
    # random translation (pixels at the data resolution) and horizontal-flip-free jitter for robustness
    augment_shift: int = 4


@dataclass
class DomainStageConfig:
    """Stage ``domain``: which of the shipped domains an image belongs to, so that a pipeline can say when an
    input is not its kind (a photo given to the avatar model, an avatar to the faces model)."""

    # domain name (a data-set kind, also the name of the shipped model for it) -> data-set root
    domains: dict[str, str] = field(
        default_factory=lambda: {"avatars": "data/avatars64_domain", "faces": "data/faces256"}
    )
    resolution: int = 64
    num_per_domain: int = 3000  # training images drawn from each domain's train split (fewer if it has fewer)
    model: ClassifierConfig = field(
        default_factory=lambda: ClassifierConfig(widths=[16, 32, 64], dropout=0.1)
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(output_dir="outputs/domain"))

    def __post_init__(self) -> None:
        if len(self.domains) < 2:
            raise ValueError("domains must name at least two data sets")
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")


@dataclass
class GANLossConfig:
    """StyleGAN2 losses and lazy regularisation (see :mod:`tedigan.losses.gan`)."""

    r1_gamma: float = 10.0  # R1 weight γ (penalty γ/2·‖∇D(x)‖² on reals); 0 disables
    r1_interval: int = 16  # lazy R1: one regularisation step every this many D steps
    pl_weight: float = 2.0  # path-length weight; 0 disables
    pl_interval: int = 4  # lazy path length: every this many G steps
    pl_batch_shrink: int = 2  # path-length batch = batch_size // shrink
    pl_decay: float = 0.01  # running-mean decay of pl_mean
    style_mixing_prob: float = 0.9  # share of generated images made from two codes

    def __post_init__(self) -> None:
        for name in ("r1_interval", "pl_interval", "pl_batch_shrink"):
            if getattr(self, name) < 1:
                raise ValueError(f"loss.{name} must be >= 1, got {getattr(self, name)}")
        if self.r1_gamma < 0 or self.pl_weight < 0:
            raise ValueError("loss.r1_gamma and loss.pl_weight must be >= 0")
        if not 0 <= self.pl_decay <= 1:
            raise ValueError(f"loss.pl_decay must be in [0, 1], got {self.pl_decay}")
        if not 0 <= self.style_mixing_prob <= 1:
            raise ValueError(f"loss.style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}")


@dataclass
class AugmentConfig:
    """Differentiable augmentation of D's inputs (see :mod:`tedigan.training.augment`)."""

    # null = automatic: on when the training set has fewer than ``auto_below`` images; true/false forces it
    enabled: bool | None = None
    auto_below: int = 30000
    policy: list[str] = field(default_factory=lambda: ["color", "translation", "cutout"])
    translation_ratio: float = 0.125
    cutout_ratio: float = 0.5
    p: float = 1.0  # per-sample probability of each transform

    def __post_init__(self) -> None:
        for name in ("translation_ratio", "cutout_ratio", "p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class GeneratorStageConfig:
    """Stage ``generator``: the style-based GAN backbone (G, D and the EMA generator).

    ``generator.resolution`` and ``discriminator.resolution`` always equal ``data.resolution`` (the
    training resolution; they are set from it). ``arch``, when given, sets both ``generator.arch`` and
    ``discriminator.arch`` ('stylegan1' trains the AdaIN generator against the residual discriminator).
    """

    data: DataConfig = field(default_factory=DataConfig)
    arch: Literal["stylegan2", "stylegan1", "swagan"] | None = None
    generator: GeneratorConfig = field(
        default_factory=lambda: GeneratorConfig(resolution=64, channel_base=4096, channel_max=256)
    )
    discriminator: DiscriminatorConfig = field(
        default_factory=lambda: DiscriminatorConfig(resolution=64, channel_base=4096, channel_max=256)
    )
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(output_dir="outputs/generator", lr=0.002, batch_size=32)
    )
    d_lr: float | None = None  # discriminator learning rate (null = train.lr)
    loss: GANLossConfig = field(default_factory=GANLossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # set: train against the projected discriminator (frozen AlexNet features, fixed random projections,
    # trained per-scale heads; tedigan.models.projected) instead of `discriminator`; use with r1_gamma 0
    projected: ProjectedDiscriminatorConfig | None = None
    ema_kimg: float = 10.0  # EMA half-life of G_ema in thousands of images
    ema_rampup: float | None = 0.05  # half-life <= rampup * images seen so far (null = off)
    # modulated conv in training: True one grouped conv, False per-sample scaling (same maths); None: the
    # faster one for the device (grouped on CUDA, per-sample on CPU)
    fused_modconv: bool | None = None
    # G and D weights and activations in channels-last memory order (None: on CPU, where their convolutions
    # run 1.15x (G) and 1.4x (D) faster forward+backward at the avatars64 preset; same maths)
    channels_last: bool | None = None
    # start from a finished run's generator/ and discriminator/ (its G_ema seeds G and G_ema; optimisers start
    # afresh) instead of random weights: to go on from weights that came back without their checkpoint
    init_from: str | None = None
    cache_images: bool = True  # keep decoded training images in RAM (only with data.num_workers = 0)
    num_samples: int = 16  # images in each samples/step-N.png grid (fixed latents)
    sample_seed: int = 12345
    sample_truncation_psi: float = 1.0

    def __post_init__(self) -> None:
        if self.arch is not None and self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        res = self.data.resolution
        g_arch = self.arch or self.generator.arch
        d_arch = self.arch or self.discriminator.arch
        # replace() re-runs each config's own validation at the final resolution/arch
        self.generator = replace(self.generator, resolution=res, arch=g_arch)
        self.discriminator = replace(self.discriminator, resolution=res, arch=d_arch)
        if self.projected is not None:
            self.projected = replace(self.projected, resolution=res, img_channels=self.generator.img_channels)
        if (self.generator.arch == "swagan") != (self.discriminator.arch == "swagan"):
            raise ValueError("swagan's wavelet G and D go together: set arch=swagan (or neither)")
        if self.ema_kimg < 0:
            raise ValueError(f"ema_kimg must be >= 0, got {self.ema_kimg}")
        if self.ema_rampup is not None and self.ema_rampup <= 0:
            raise ValueError(f"ema_rampup must be > 0 or null, got {self.ema_rampup}")
        _check_lr("d_lr", self.d_lr)
        if self.train.weight_decay:
            raise ValueError(
                "the generator stage uses Adam without weight decay: leave train.weight_decay at 0"
            )
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")


@dataclass
class InversionLossConfig:
    """Encoder losses of stage ``inversion`` (a weight of 0 switches a term off)."""

    pixel: float = 1.0  # MSE(G(E(x)), target)
    lpips: float = 0.8  # LPIPS with the real VGG16 trunk (tedigan.losses.perceptual)
    latent: float = 1.0  # ‖E(G(w)) − w‖² (mean over elements) on generated pairs (image modality only)
    adversarial: float = 0.05  # non-saturating D loss on G(E(x)) (in-domain inversion)
    identity: float = 0.0  # identity distance (dlib descriptor by default; see identity_net)
    r1_gamma: float = 1.0  # R1 on D's reals; 0 disables
    r1_interval: int = 16
    style_mixing_prob: float = 0.5  # share of generated training codes made from two w

    def __post_init__(self) -> None:
        for name in ("pixel", "lpips", "latent", "adversarial", "identity", "r1_gamma"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.r1_interval < 1:
            raise ValueError(f"loss.r1_interval must be >= 1, got {self.r1_interval}")
        if not 0 <= self.style_mixing_prob <= 1:
            raise ValueError(f"loss.style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}")


@dataclass
class InversionStageConfig:
    """Stage ``inversion``: image (or sketch / label map) → W+ encoder for a frozen trained generator.

    ``encoder.resolution``, ``num_ws``, ``w_dim``, ``modality`` and ``in_channels`` are set at run time from
    the generator and ``modality``; only the widths are read from ``encoder``. ``--modality sketch`` (or
    ``--modality=label``) switches the input; the target is always the paired RGB image.
    """

    data: DataConfig = field(default_factory=DataConfig)
    modality: Literal["image", "sketch", "label"] = "image"
    # a folder written by the generator stage, or "mobilestylegan" (the FFHQ MobileStyleGAN of random-face)
    generator_path: str = "outputs/generator/generator"
    # the encoder's input size; None: the generator's (larger images are resized down inside the encoder)
    input_resolution: int | None = None
    # None: the generator stage's sibling ``discriminator/`` when present, else a fresh D; "" forces fresh
    discriminator_path: str | None = None
    classifier_path: str | None = None  # attribute classifier for the final metrics (None: skipped)
    identity_net: Literal["dlib", "facenet"] = "dlib"  # the identity loss/metric network (dlib: offline)
    eval_identity: bool = False  # measure identity kept in the final evaluation even when the loss is off
    identity_weights: str | None = None  # its weights (None: tedigan.assets lookup)
    # start from a trained encoder folder (e.g. tedigan/weights/avatars64/encoder) to train it further; its
    # widths, modality and W+ shape must match this run's (None: random initialisation)
    init_encoder: str | None = None
    # a proxy_head folder (e.g. tedigan/weights/faces/proxy_head): the image losses compare the fast route's
    # image (the generator's own blocks up to the head's, then the head: 128 px for the faces head) with the
    # target average-pooled to its size, instead of the full synthesis (several times dearer on a CPU);
    # evaluation and sample grids still render the full generator (None: the full synthesis)
    image_route: str | None = None
    label_classes: int | None = None  # label modality: number of classes (None: from the data set)
    encoder: EncoderConfig = field(
        default_factory=lambda: EncoderConfig(
            channel_base=1024, channel_max=256, fpn_channels=128, head_dim=256, blocks_per_level=1
        )
    )
    loss: InversionLossConfig = field(default_factory=InversionLossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(output_dir="outputs/inversion", lr=5e-4, batch_size=16)
    )
    d_lr: float | None = 2e-4  # discriminator learning rate (null = train.lr)
    generated_ratio: float = 0.5  # share of each batch generated by G (image modality; 0 for sketch/label)
    lr_warmup_steps: int = 100
    lr_min_ratio: float = 0.1  # cosine decay of the encoder lr to lr * lr_min_ratio (1 = constant)
    cache_images: bool = True  # keep decoded training samples in RAM (only with data.num_workers = 0)
    fused_modconv: bool | None = None  # G's modulated conv: as the generator stage's (None: per device)
    num_grid: int = 16  # validation pairs in each samples/step-N.png grid (input | reconstruction)
    eval_num: int | None = None  # validation images for the final metrics (None: the whole split)
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        if not 0 <= self.generated_ratio <= 1:
            raise ValueError(f"generated_ratio must be in [0, 1], got {self.generated_ratio}")
        _check_lr("d_lr", self.d_lr)
        if not 0 < self.lr_min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must be in (0, 1], got {self.lr_min_ratio}")
        if self.lr_warmup_steps < 0 or self.num_grid < 1 or self.eval_batch_size < 1:
            raise ValueError("lr_warmup_steps must be >= 0, num_grid and eval_batch_size >= 1")
        if self.eval_num is not None and self.eval_num < 1:
            raise ValueError(f"eval_num must be >= 1 or null, got {self.eval_num}")
        if self.label_classes is not None and self.label_classes < 2:
            raise ValueError(f"label_classes must be >= 2, got {self.label_classes}")
        if not self.generator_path:
            raise ValueError("generator_path is required: a folder written by the generator stage")
        # the encoder's input follows the modality (label maps: their class count, known once data is read)
        in_ch = {"image": 3, "sketch": 1}.get(self.modality, self.label_classes or self.encoder.in_channels)
        self.encoder = replace(self.encoder, modality=self.modality, in_channels=in_ch)


@dataclass
class TextLossConfig:
    """Visual-linguistic similarity losses of stage ``text`` (a weight of 0 switches a term off)."""

    l2: float = 1.0  # weighted per-layer MSE between the text code and the image's inverted code E(x)
    # per-W+-layer weights of the L2 term (null = all 1); normalised to sum to 1
    layer_weights: list[float] | None = None
    # divide the L2 term by the variance of the training codes E(x) (mean over elements): 1.0 = as good as
    # predicting the mean code, whatever the scale of the generator's W (makes `contrastive` comparable)
    normalize_l2: bool = True
    contrastive: float = 0.0  # InfoNCE over the batch on flattened codes (offsets from w_avg, cosine)
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.l2 < 0 or self.contrastive < 0:
            raise ValueError("loss.l2 and loss.contrastive must be >= 0")
        if self.l2 == 0 and self.contrastive == 0:
            raise ValueError("loss.l2 and loss.contrastive are both 0: nothing to train")
        if self.temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {self.temperature}")
        lw = self.layer_weights
        if lw is not None and (not lw or any(w < 0 for w in lw) or sum(lw) <= 0):
            raise ValueError(f"loss.layer_weights must be >= 0 with a positive sum, got {lw}")


@dataclass
class TextStageConfig:
    """Stage ``text``: caption → W+ text encoder trained against a frozen image encoder's codes E(x).

    ``text_encoder.num_ws``/``w_dim``/``embed_dim`` are set at run time from the image encoder and the text
    backbone. With a frozen backbone the sentence embeddings and E(x) are computed once and cached under
    ``cache_dir`` (default ``<output_dir>/cache``); only the head trains, on the cached tensors.
    """

    data: DataConfig = field(default_factory=DataConfig)
    encoder_path: str = "outputs/inversion/encoder"  # an image encoder folder written by stage inversion
    generator_path: str | None = None  # null: the generator recorded in the encoder's config.json
    classifier_path: str | None = None  # attribute judge for text->image accuracy (null: skipped)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    loss: TextLossConfig = field(default_factory=TextLossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            output_dir="outputs/text", lr=1e-3, batch_size=128, max_steps=2000
        )
    )
    backbone_lr: float = 2e-5  # only with text_encoder.freeze_backbone = false
    lr_warmup_steps: int = 100
    lr_min_ratio: float = 0.05  # cosine decay of the lr to lr * lr_min_ratio (1 = constant)
    cache_dir: str | None = None  # null: <train.output_dir>/cache
    embed_batch_size: int = 64  # captions per backbone pass when caching (sorted by length)
    code_batch_size: int = 64  # images per encoder pass when caching
    train_num: int | None = None  # training images used (null: the whole split)
    eval_num: int | None = 1000  # held-out images: the retrieval pool (null: the whole split)
    eval_captions_per_image: int = 1  # captions per held-out image judged for attribute accuracy
    eval_batch_size: int = 64
    num_grid: int = 12  # held-out captions in the samples / final grid
    # step of the "prototype" edit at strength 1, in units of the prototype difference (tedigan.editing.prototypes)
    prototype_gain: float = 2.0

    def __post_init__(self) -> None:
        if not self.encoder_path:
            raise ValueError("encoder_path is required: an image encoder folder written by stage inversion")
        if not 0 < self.lr_min_ratio <= 1:
            raise ValueError(f"lr_min_ratio must be in (0, 1], got {self.lr_min_ratio}")
        if self.lr_warmup_steps < 0:
            raise ValueError(f"lr_warmup_steps must be >= 0, got {self.lr_warmup_steps}")
        _check_lr("backbone_lr", self.backbone_lr)
        for name in ("embed_batch_size", "code_batch_size", "eval_captions_per_image", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_num", "eval_num"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {getattr(self, name)}")
        if self.num_grid < 0:
            raise ValueError(f"num_grid must be >= 0, got {self.num_grid}")
        if not 0 < self.prototype_gain <= 10:
            raise ValueError(f"prototype_gain must be in (0, 10], got {self.prototype_gain}")


STAGE_CONFIGS: dict[str, type] = {
    "classifier": ClassifierStageConfig,
    "domain": DomainStageConfig,
    "generator": GeneratorStageConfig,
    "inversion": InversionStageConfig,
    "text": TextStageConfig,
}


def _parse_value(text: str) -> Any:
    """YAML scalar parsing for overrides (``true``, ``3``, ``[1, 2]``); anything else stays a string."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["--train.lr=0.01", "--data.root", "x", "model.width=8"]`` → ``{"train.lr": 0.01, ...}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        key = arg[2:] if arg.startswith("--") else arg
        if "=" in key:
            key, text = key.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            i += 1
            text = args[i]
        else:
            raise ConfigError(f"override '{arg}' needs a value: use --{key}=VALUE")
        if not key:
            raise ConfigError(f"override '{arg}' has no key")
        out[key.replace("-", "_")] = _parse_value(text)
        i += 1
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys inside a nested dict (creating levels); types are checked later by ``from_dict``."""
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{dotted}': '{part}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return data


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping: YAML keeps the last one silently, so
    a second ``train:`` section would replace the first without a word."""


def _unique_mapping(loader: _ConfigLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' merges are not duplicates
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in first_line:
                raise ConfigError(
                    f"line {line}: {key!r} is given twice (first on line {first_line[key]}): YAML would keep only "
                    "the last one; merge them into one"
                )
            first_line[key] = line
        except TypeError:  # an unhashable key: construct_mapping says what is wrong with it
            break
    return loader.construct_mapping(node, deep=deep)


_ConfigLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] | dict | None = None):
    """Load ``cls`` from a YAML file (optional) and overrides; unknown keys and wrong types raise ConfigError."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"{path} is not a text file (byte {err.object[err.start]:#04x} at offset {err.start} is not "
                "UTF-8): give a YAML config such as configs/generator_tiny.yaml"
            ) from None
        try:
            data = yaml.load(text, Loader=_ConfigLoader) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        except ConfigError as err:
            raise ConfigError(f"{path}, {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data.pop("stage", None)
    if overrides:
        if isinstance(overrides, list):
            overrides = parse_overrides(overrides)
        apply_overrides(data, overrides)
    return from_dict(cls, data)


def dump_config(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Any, path: str | Path, stage: str | None = None) -> Path:
    """Write the resolved config as YAML (loadable again with ``load_config``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"stage: {stage}\n" if stage else ""
    path.write_text(head + dump_config(cfg))
    return path
