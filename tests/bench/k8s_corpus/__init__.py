"""Issue 12's labelled Kubernetes corpus: templates (``tune.yaml``, ``heldout.yaml``), a seeded
generator (:mod:`.generate`) and the scorer used by ``make bench`` (:mod:`.score`).

``heldout.yaml`` is never tuned on: it is read only by the scorer and the smoke test.
"""
