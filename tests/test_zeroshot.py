"""method=zeroshot (issue 5): no training, same test split, results.json like any run."""

from __future__ import annotations

import pandas as pd
import pytest

from tunelab.run import RunContext, run

TOPICS = {
    "sports": ["The football team won the match", "She scored a goal in the soccer game",
               "The tennis player won the championship", "Basketball players trained for the game",
               "The runner won the marathon race", "Our hockey team lost the match"],
    "cooking": ["Bake the cake in the oven for an hour", "Chop the onions and fry them in butter",
                "This recipe needs flour, eggs and sugar", "Boil the pasta and add the tomato sauce",
                "She cooked a delicious soup for dinner", "Roast the chicken with garlic and herbs"],
    "weather": ["Heavy rain and strong wind are expected tomorrow", "It will be sunny and warm today",
                "Snow is falling and the temperature is below zero", "A storm with thunder is coming tonight",
                "The forecast says cloudy skies and light rain", "It is freezing cold and windy outside"],
}


@pytest.fixture
def topics_csv(tmp_path):
    rows = [(t, label) for label, texts in TOPICS.items() for t in texts]
    path = tmp_path / "topics.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def _cfg(compose, tmp_path, csv, *overrides):
    return compose(["method=zeroshot", "logger=none", "data=csv", f"data.path={csv}", "data.test_size=0.5",
                    "data.val_size=0.34", f"cache_dir={tmp_path}/cache", *overrides])


def test_record_on_the_same_test_split(compose, tmp_path, topics_csv):
    """Wiring on the tiny random model: metrics, baseline and counts; test split = seq_cls's."""
    from tunelab.methods.shared.data import build_datamodule

    cfg = _cfg(compose, tmp_path, topics_csv, "model=tiny")
    rec = run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert rec["status"] == "ok" and rec["method"] == "zeroshot"
    m = rec["metrics"]
    assert {"test/acc", "test/f1", "test/f1_macro"} <= set(m) and 0 <= m["test/acc"] <= 1
    assert m["test/f1"] == m["test/f1_macro"]          # multi-class: f1 is macro
    assert rec["label_names"] == ["cooking", "sports", "weather"]
    assert sum(rec["pred_class_counts"].values()) == rec["n_examples"]["test"] == 9
    assert rec["extra"]["test_label_counts"] == {"cooking": 3, "sports": 3, "weather": 3}
    assert rec["majority_rate"] == pytest.approx(1 / 3)
    assert rec["extra"]["zeroshot"]["prompts"]["sports"] == ["This text is sports."]
    seq = compose(["model=tiny", "data=csv", f"data.path={topics_csv}", "data.test_size=0.5", "data.val_size=0.34"])
    test = build_datamodule(seq, None).load().test
    assert sorted(test["text"]) == sorted(build_datamodule(cfg, None).load().test["text"])


def test_unambiguous_toy_set_with_minilm(compose, tmp_path, topics_csv):
    """Descriptions that say what the texts are about: the packaged sentence encoder gets them."""
    cfg = _cfg(compose, tmp_path, topics_csv, "model=minilm", "method.templates=['This text is about {label}.']",
               "+method.descriptions.sports='sports, a team winning a game or match'",
               "+method.descriptions.cooking='cooking food, a recipe'",
               "+method.descriptions.weather='the weather, rain, sun, snow or wind'")
    rec = run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert rec["metrics"]["test/acc"] == 1.0, rec["pred_class_counts"]
    assert rec["extra"]["zeroshot"]["method"] == "embedding_similarity"


def test_prompts_and_errors(compose, tmp_path, topics_csv):
    from tunelab.errors import ConfigError, HubUnavailableError
    from tunelab.methods.zeroshot import label_prompts

    cfg = _cfg(compose, tmp_path, topics_csv, "model=tiny", "method.templates=['{label}','About {label}.']",
               "+method.descriptions.sports=games")
    p = label_prompts(["sports", "cooking"], cfg.method)
    assert p == {"sports": ["games", "About games."], "cooking": ["cooking", "About cooking."]}
    with pytest.raises(ConfigError, match="placeholder"):
        run(_cfg(compose, tmp_path, topics_csv, "model=tiny", "method.templates=['no slot']"),
            RunContext(out_dir=tmp_path / "a"))
    with pytest.raises(ConfigError, match="do not have"):
        run(_cfg(compose, tmp_path, topics_csv, "model=tiny", "+method.descriptions.music=songs"),
            RunContext(out_dir=tmp_path / "b"))
    # No NLI model is packaged and the hub is offline: one clear sentence, not a stack of retries.
    with pytest.raises(HubUnavailableError, match="No NLI model is packaged"):
        run(_cfg(compose, tmp_path, topics_csv, "model=tiny", "method.nli_model=facebook/bart-large-mnli"),
            RunContext(out_dir=tmp_path / "c"))
