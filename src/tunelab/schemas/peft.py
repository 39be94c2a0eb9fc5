"""Schema of the ``peft`` group: parameter-efficient modules trained on a frozen encoder.

``peft=lora|adapters|ia3`` adds small trainable modules inside the encoder, whose own weights
stay as pretrained; they and the task's head are all that trains (the plan records them). For
one task; a curriculum gives every task its own with ``strategy=lora|adapters`` (the same code:
``tunelab.models.peft``).

* ``lora`` (Hu et al. 2022): low-rank updates ``B·A`` (rank ``r``, scale ``alpha / r``) beside
  the target linear layers; ``target_modules: null`` takes PEFT's choice for the model's family.
* ``adapters`` (Pfeiffer et al. 2020): a bottleneck after each layer's feed-forward
  block, ``hidden / reduction_factor`` units (the ``adapters`` library's SeqBn).
* ``ia3`` (Liu et al. 2022): learned vectors rescaling keys, values and the feed-forward
  activations; ``target_modules``/``feedforward_modules: null`` take PEFT's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from tunelab.schemas.checks import bounded, choice


@dataclass
class PeftConfig:
    # none | lora | adapters | ia3
    name: str = choice("none", "none", "lora", "adapters", "ia3")
    # lora
    r: int = bounded(8, 1)
    alpha: int = bounded(16, 1)
    dropout: float = bounded(0.1, 0, 1, hi_open=True)
    # lora, ia3: the linear layers adapted (null: PEFT's default for the model's family)
    target_modules: Optional[List[str]] = None
    # ia3: which of target_modules are feed-forward (scaled on their input; null: PEFT's default)
    feedforward_modules: Optional[List[str]] = None
    # adapters: bottleneck width = hidden_size / reduction_factor
    reduction_factor: int = bounded(16, 1)
