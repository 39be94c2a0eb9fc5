"""The validation predictions of the weights that are tested, for temperature scaling.

Temperature scaling is fitted on validation predictions and applied to test predictions, so both
must come from the same weights. The test runs on the best checkpoint, which is an earlier
validation pass's weights whenever a later epoch scored worse, so "the last validation pass" is
not enough. :class:`KeptValidation` keeps every validation pass's predictions by the optimiser
step they were made at, learns which step the tested weights are from when Lightning loads a
checkpoint (its ``global_step``), and hands that pass's predictions to the test. No extra
validation pass is run.

A checkpoint written right after a validation pass also carries that pass's predictions (as
tensors: checkpoints are loaded with ``weights_only=True``), so a run resumed after a kill still
finds the validation predictions of a best checkpoint written before the kill.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tunelab import predictions

CKPT_KEY = "tunelab_val_predictions"


class KeptValidation:
    """Validation predictions by optimiser step (they are small: examples x classes floats)."""

    def __init__(self) -> None:
        self.by_step: dict[int, predictions.Predictions] = {}
        self.loaded_step: Optional[int] = None

    def add(self, step: int, preds: predictions.Predictions) -> None:
        self.by_step[int(step)] = preds

    def weights_moved(self) -> None:
        """Training (re)starts: the weights are no longer those of a loaded checkpoint."""
        self.loaded_step = None

    def of_tested(self, global_step: int) -> Optional[predictions.Predictions]:
        """The predictions of the weights under test: the loaded checkpoint's step, else the current one."""
        return self.by_step.get(self.loaded_step if self.loaded_step is not None else int(global_step))

    def save(self, checkpoint: dict, step: int) -> None:
        p = self.by_step.get(int(step))
        if p is not None:
            checkpoint[CKPT_KEY] = {
                "step": int(step), "index": torch.from_numpy(np.asarray(p.index, dtype=np.int64)),
                "gold": torch.from_numpy(np.asarray(p.gold, dtype=np.int64)),
                "pred": torch.from_numpy(np.asarray(p.pred, dtype=np.int64)),
                "probs": None if p.probs is None else torch.from_numpy(np.asarray(p.probs, dtype=np.float32)),
                "label_names": list(p.label_names)}

    def load(self, checkpoint: dict) -> None:
        self.loaded_step = checkpoint.get("global_step")
        kept = checkpoint.get(CKPT_KEY)
        if kept is not None and int(kept["step"]) not in self.by_step:
            probs = None if kept["probs"] is None else kept["probs"].numpy()
            self.by_step[int(kept["step"])] = predictions.for_classes(
                kept["index"].numpy(), kept["gold"].numpy(), kept["pred"].numpy(), kept["label_names"], probs)
