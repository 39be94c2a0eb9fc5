"""What the methods share, below all of them: no method imports another method.

* ``data``: the splits and the tokenised datamodule every method reads, logged the same way;
* ``routes``: ``run_route``, the runner of the plan's route (what ``method=finetune`` runs);
* ``encoder``: the LightningModule around a loaded model under its plan; the full forward pass;
* ``cached``: the runners that train on cached frozen outputs (features, prefix states);
* ``probe``: a classifier fitted on frozen-encoder features (``method=features`` and
  ``freeze=all``'s logistic-regression probe are this one computation);
* ``shallow``: scoring of the classifiers that fine-tune nothing (sparse, features, zero-shot);
* ``record``: the part of results.json a runner fills in.
"""
