"""What tunelab's own Hydra sweepers share (``hydra_plugins.tunelab_sweepers``).

* ``space``: the sweep's overrides as arms x seeds, and each job's override list;
* ``jobs``: planned jobs, launching a wave, reading each job's outcome from its results.json;
* ``state``: the study's facts on disk (setup, rounds, outcomes), so a rerun continues it;
* ``adaptive``: the adaptive seed study (``hydra/sweeper=adaptive``) built from them and the
  rule in ``tunelab.sequential``.

Nothing is imported here: each sweeper imports the modules it uses.
"""
