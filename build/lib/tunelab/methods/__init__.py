"""How a model is obtained for the task: one module per ``conf/method/<name>.yaml``.

Each method module has a ``run(cfg, ctx) -> dict`` that the method's YAML names in
``_target_``; ``tunelab.run`` calls it after validating the config and records what it returns.
"""
