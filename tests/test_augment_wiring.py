"""augment=eda through the real config and data module (issue 5); EDA itself: test_augment.py."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tunelab.augment import WordNetMissingError, load_wordnet
from tunelab.methods.shared.data import build_datamodule, train_transform_of

try:
    load_wordnet()
except WordNetMissingError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"WordNet is not installed ({exc}); bash scripts/install_wordnet.sh", allow_module_level=True)

BASE = ["model=tiny", "logger=none", "data.max_train_samples=40", "data.max_eval_samples=20"]


def _splits(compose, *overrides):
    cfg = compose([*BASE, *overrides])
    return build_datamodule(cfg, None, train_transform=train_transform_of(cfg)).load()


def test_eda_grows_train_only_and_is_seeded(compose):
    plain = _splits(compose)
    aug = _splits(compose, "augment=eda", "augment.num_aug=3")
    n = len(plain.train)
    assert len(aug.train) == 4 * n                                     # (num_aug + 1) x
    pd.testing.assert_frame_equal(aug.train.iloc[:n], plain.train)     # originals first, unchanged
    assert aug.train["label"].tolist()[n:] == [x for x in plain.train["label"] for _ in range(3)]
    assert aug.train["text"].iloc[n:].ne("").all()
    for split in ("val", "test"):                                      # never touched
        pd.testing.assert_frame_equal(getattr(aug, split), getattr(plain, split))
    again = _splits(compose, "augment=eda", "augment.num_aug=3")
    pd.testing.assert_frame_equal(again.train, aug.train)              # same seed: same copies
    other = _splits(compose, "augment=eda", "augment.num_aug=3", "seed=1")
    assert other.train["text"].tolist()[n:] != aug.train["text"].tolist()[n:]
    offset = _splits(compose, "augment=eda", "augment.num_aug=3", "augment.seed_offset=1")
    assert offset.train["text"].tolist() == other.train["text"].tolist()   # seed + seed_offset


def test_eda_in_a_run_records_the_grown_train_split(compose, tmp_path):
    from tunelab.run import RunContext, run

    cfg = compose([*BASE, "augment=eda", "augment.num_aug=2", "optim.epochs=1", "optim.batch_size=32",
                   "trainer.enable_progress_bar=false", "trainer.enable_checkpointing=false",
                   f"cache_dir={tmp_path}/cache"])
    rec = run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert rec["status"] == "ok"
    assert rec["n_examples"] == {"train": 120, "val": 20, "test": 20}
    assert rec["config"]["augment"]["name"] == "eda"


def test_none_and_bad_settings(compose):
    from tunelab.augment import train_transform
    from tunelab.errors import ConfigError

    assert train_transform_of(compose(BASE)) is None
    assert train_transform(compose([*BASE, "augment=eda", "augment.name=none"]).augment) is None
    with pytest.raises(ConfigError, match=re.escape("augment.p_rd=2.0 must be in [0, 1].")):
        train_transform(compose([*BASE, "augment=eda", "augment.p_rd=2"]).augment)
    bad_name = compose([*BASE, "augment=eda", "augment.name=backtranslate"])
    message = "augment.name='backtranslate' is not one of ['eda', 'none']."
    with pytest.raises(ConfigError, match=re.escape(message)):
        train_transform_of(bad_name)  # run.py's path: only name=none skips the check
    fn = train_transform(compose([*BASE, "augment=eda"]).augment)
    with pytest.raises(ConfigError, match="token-level"):
        fn(pd.DataFrame({"tokens": [["a", "b"]], "tags": [["O", "O"]]}), 0)
