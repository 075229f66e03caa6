"""Procedural avatar faces: the project's default data set, with ground truth for every attribute.

Aligned cartoon faces are composed from the SVG parts shipped with ``python_avatars`` (MIT) and rasterised
with ``cairosvg``. Every choice that determines the pixels is kept in a plain JSON-able *record*, so an
edit's true result is known: ``render(with_attribute(record, "hat", "beanie"))`` is what a perfect
text-guided editor (TediGAN, Xia et al., CVPR 2021) should produce for "add a beanie". Each sample also has
10 captions from a small probabilistic grammar (as Multi-Modal-CelebA-HQ has 10 per image), a segmentation
label map over :data:`PART_CLASSES` and a line sketch, i.e. every modality TediGAN conditions on.

Attribute space (:data:`ATTRIBUTES`) and why
--------------------------------------------
The classified attributes feed an attribute classifier that must be near perfect at 64 px, so every value
is a group of SVG templates that is visibly distinct at that size; oddities (vomit mouth, eye patch, heart
eyes, astronaut helmet, flower crowns, fixed-colour hair templates) are left out.

* ``hair_color`` has an explicit ``"none"`` value used exactly when ``hair_style == "bald"``: a bald head
  shows no hair colour, and an explicit value keeps the label learnable instead of asking a classifier to
  guess an invisible colour. The record still keeps the person's colour in ``facial_hair_color`` (beards
  keep it, and it comes back when hair grows back in :func:`with_attribute`).
* ``python_avatars`` draws hats *instead of* hair. Here the hat is drawn over the hair, which keeps long,
  curly and afro hair visible below it, but short hair, a bun or a bald head disappear under any hat. Hats
  are therefore only sampled with ``hair_style in HAT_HAIR_STYLES`` (long, curly, afro): hair style and
  colour stay visible on every image. Hijabs/turbans would hide all hair and are not used.
* ``skin_tone`` uses four well separated tones; ``facial_hair`` uses the hair colour (natural look).

Non-classified record fields vary for diversity: eyes, eyebrows, nose, clothing type/colour/graphic,
hat colour, background colour, and the concrete template inside each attribute group.

Rendering
---------
The composed SVG's viewBox is the fixed face-centred crop :data:`CROP` (user units of the 264x280
avataaars canvas; it is the (48,16,208,176) crop of a 256 px render, widened a little so hats and hair tops
are not cut). It is rasterised at ``render_px = resolution * ceil(256 / resolution)`` (>= 256, at least 2x
supersampling; cairosvg clips masks when drawing below 1 px per user unit) and reduced with LANCZOS.
The label map comes from a second rasterisation of the same SVG in which each part's subtree is recoloured
to a flat class colour with anti-aliasing off (``shape-rendering="crispEdges"``), opacities set to 1 and
filters dropped, so parts are composited in their true z-order (hair over skin, hat over hair, glasses over
the hat); it is decoded by exact colour lookup (the ~1-2% of pixels that cairo still blends at mask edges
take the class of an adjacent exact pixel) and reduced with NEAREST. The sketch draws dark lines on part
boundaries plus strong luminance edges (teeth, pupils, hair strands) at ``render_px``, thickened and
area-reduced, so lines stay about one output pixel wide at any resolution.

Determinism: sample ``i`` of a data set depends only on ``(seed, i)`` (string-seeded :class:`random.Random`,
stable across Python versions); the same record always renders to identical pixels on a given
cairo/cairosvg build.
"""

from tedigan.data.avatars.attributes import (
    ATTRIBUTES,
    BACKGROUND_COLORS,
    CLOTHING,
    CLOTHING_COLORS,
    CLOTHING_GRAPHICS,
    CROP,
    EYEBROWS,
    EYES,
    EYEWEAR_TEMPLATES,
    FACIAL_HAIR_TEMPLATES,
    HAIR_COLORS,
    HAIR_TEMPLATES,
    HAT_COLORS,
    HAT_HAIR_STYLES,
    HAT_TEMPLATES,
    MOUTH_TEMPLATES,
    NOSES,
    PART_CLASSES,
    PART_COLORS,
    RECORD_VERSION,
    SKIN_TONES,
    check_record,
    decode_attributes,
    encode_attributes,
    sample_record,
    valid_edits,
    with_attribute,
)
from tedigan.data.avatars.captions import (
    AVATAR_VOCABULARY,
    HAIR_COLOR_WORDS,
    PHRASES,
    caption_with_mentions,
    captions,
    parse_prompt,
)
from tedigan.data.avatars.dataset import (
    AvatarDataset,
    build_dataset,
    captions_for,
    record_for,
    sample_id,
    split_ranges,
)
from tedigan.data.avatars.preview import attribute_sheet, preview_grid
from tedigan.data.avatars.render import RenderedAvatar, colorize_label, compose_svg, render, render_px_for

__all__ = [
    "ATTRIBUTES",
    "AVATAR_VOCABULARY",
    "AvatarDataset",
    "BACKGROUND_COLORS",
    "CLOTHING",
    "CLOTHING_COLORS",
    "CLOTHING_GRAPHICS",
    "CROP",
    "EYEBROWS",
    "EYES",
    "EYEWEAR_TEMPLATES",
    "FACIAL_HAIR_TEMPLATES",
    "HAIR_COLORS",
    "HAIR_COLOR_WORDS",
    "HAIR_TEMPLATES",
    "HAT_COLORS",
    "HAT_HAIR_STYLES",
    "HAT_TEMPLATES",
    "MOUTH_TEMPLATES",
    "NOSES",
    "PART_CLASSES",
    "PART_COLORS",
    "PHRASES",
    "RECORD_VERSION",
    "RenderedAvatar",
    "SKIN_TONES",
    "attribute_sheet",
    "build_dataset",
    "caption_with_mentions",
    "captions",
    "captions_for",
    "check_record",
    "colorize_label",
    "compose_svg",
    "decode_attributes",
    "encode_attributes",
    "parse_prompt",
    "preview_grid",
    "record_for",
    "render",
    "render_px_for",
    "sample_id",
    "sample_record",
    "split_ranges",
    "valid_edits",
    "with_attribute",
]
