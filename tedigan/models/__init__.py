"""tedigan.models: the networks (generators, encoders, text encoder, judges) and their save/load.

Importing the package registers every generator family with :mod:`tedigan.models.stylegan2` (SWAGAN's
wavelet parts live in :mod:`tedigan.models.swagan`, which imports stylegan2, never the other way round).
"""

from tedigan.models import swagan  # noqa: F401  (registers arch "swagan")
