"""The web demo's tab functions, called directly (no browser, no server): ``tedigan demo --model faces``."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.needs_faces
@pytest.mark.slow
def test_faces_model_demo_samples_tab(monkeypatch):
    """The faces pipeline and the bare face generator behind the samples tab are cached apart: sampling after
    the pipeline is loaded (as ``main`` does before serving) gives faces, and the pipeline stays usable."""
    pytest.importorskip("gradio", reason="the demo needs gradio (pip install -e '.[demo]')")
    from tedigan import app
    from tedigan.pipeline import TediGANPipeline

    for cache in ("_PIPES", "_GENERATORS"):
        monkeypatch.setattr(app, cache, {})
    pipe = app._pipe("faces")
    demo = app.build_demo("faces")
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    sample = next(f.fn for f in fns if f.name == "faces")
    images = sample("0-1", 0.7)
    assert len(images) == 2 and all(im.size == (256, 256) for im in images)
    assert np.asarray(images[1]).astype(float).std() > 20  # a face, not a flat image
    assert app._pipe("faces") is pipe and isinstance(pipe, TediGANPipeline)
