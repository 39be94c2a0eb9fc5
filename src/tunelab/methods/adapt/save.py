"""Saving the adapted encoder as a Hugging Face folder any later run can load.

The folder holds the MLM model (encoder + its trained MLM head) as safetensors, and the
tokenizer. MLM models have no pooler, so the source checkpoint's pooler is copied in when it had
a trained one: a classifier built on the adapted encoder then differs from ``adapt=none`` only by
the adaptation, not by a freshly drawn pooler.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig

# The folder, under the job dir, that stage 2 (and any later run: model.path=) loads.
ENCODER_DIR = "adapted_encoder"


def save_encoder(cfg: DictConfig, model, tokenizer, path: Path) -> list[str]:
    """Save ``model`` and ``tokenizer`` to ``path`` (replacing it); returns notes for the record."""
    notes = []
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    if not cfg.model.random_init:
        try:
            copied = copy_pooler(cfg.model, model, path)
            if copied:
                notes.append(f"copied the original pooler ({', '.join(copied)}) into the adapted encoder")
        except Exception as e:  # the encoder is still usable; stage 2 then starts a fresh pooler
            notes.append(f"could not copy the original pooler ({type(e).__name__}: {e})")
    return notes


def copy_pooler(model_cfg, mlm_model, path: Path) -> list[str]:
    """Put the source checkpoint's pooler into the saved weights; returns the keys added (none
    when the source had no trained pooler either)."""
    import warnings

    import transformers
    from safetensors.torch import load_file, save_file

    from tunelab.models.loading import load_config, model_source

    weights = path / "model.safetensors"
    if not weights.is_file():
        return []
    prev = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base, info = transformers.AutoModel.from_pretrained(
                model_source(model_cfg), config=load_config(model_cfg), output_loading_info=True,
                trust_remote_code=model_cfg.trust_remote_code)
    finally:
        transformers.logging.set_verbosity(prev)
    if any("pooler" in k for k in info.get("missing_keys", [])):
        return []
    prefix = getattr(mlm_model, "base_model_prefix", "") or ""
    extra = {f"{prefix}.{k}" if prefix else k: v.detach().contiguous().clone()
             for k, v in base.state_dict().items() if k.startswith("pooler.")}
    if not extra:
        return []
    tensors = load_file(str(weights))
    tensors.update({k: v for k, v in extra.items() if k not in tensors})
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return sorted(extra)
