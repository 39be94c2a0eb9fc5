# Makes conf/ importable as the package ``tunelab.conf`` (src/tunelab/conf links here), so
# Hydra finds the configs as ``pkg://tunelab.conf`` in an installed (non-editable) tunelab too.
