"""Schemas of the study-level config groups, one module per idea (kept import-light:
dataclasses only, so composing a config never loads torch). ``tunelab.config`` assembles them."""
