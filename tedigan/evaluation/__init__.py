"""Evaluation of whole pipelines, the room above :mod:`tedigan.pipeline` (the metrics below it never import it).

- :mod:`~tedigan.evaluation.edit_benchmark`: the ground-truth edit benchmark on held-out rendered avatars
  (``tedigan benchmark``; :mod:`~tedigan.evaluation.face_benchmark`: ``tedigan face-benchmark``, and
  :mod:`~tedigan.evaluation.photo_benchmark`: ``tedigan face-benchmark --photos``, real photos in each fidelity
  mode, with the same-person threshold of :mod:`~tedigan.evaluation.identity_calibration`);
- :mod:`~tedigan.evaluation.judges`: what the face judges say about generated faces
  (``tedigan judges``).
"""
