"""resume=auto never serves a result, nor continues a checkpoint, made from other file contents.

The config (so the job's identity) names files; editing one between two runs of the same command
used to leave the job "already ok" with the old file's results. The references here are
hashlib over the files' bytes and hand-made records, not the code's own fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import FAST


def _csv(path: Path, flip: bool = False) -> Path:
    words = ["great", "awful", "flight", "delay", "crew", "bag", "seat", "late"]
    rows = ["text,label"] + [f"{words[i % 8]} {words[(i * 3) % 8]} text {i},"
                             f"{'positive' if (i % 3 == 0) != (flip and i == 5) else 'negative'}" for i in range(80)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _cfg(compose, csv: Path, *extra):
    return compose(FAST + ["data=csv", f"data.path={csv}", "data.labels=[negative,positive]", "resume=auto",
                           *extra])


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def test_the_record_holds_each_named_file_by_content(compose, tmp_path):
    from tunelab.locate import resolve_local
    from tunelab.ops.inputs import fingerprint

    csv = _csv(tmp_path / "a.csv")
    fp = fingerprint(_cfg(compose, csv, "model=minilm"))
    assert fp["data.path"] == {"path": str(csv), "sha256": _sha(csv)}
    folder = resolve_local(compose(["model=minilm"]).model.name)
    assert fp["model.name"]["files"]["config.json"] == _sha(folder / "config.json")
    assert set(fp["model.name"]["files"]) >= {"config.json", "vocab.txt"}
    # a touch, or a copy with other times, is the same content
    os.utime(csv, (1, 1))
    assert fingerprint(_cfg(compose, csv, "model=minilm"))["data.path"] == fp["data.path"]


def test_an_ok_job_whose_data_file_changed_is_not_skipped(compose, tmp_path):
    from tunelab.errors import ConfigError
    from tunelab.run import RunContext, run

    csv, out = _csv(tmp_path / "a.csv"), tmp_path / "job"
    first = run(_cfg(compose, csv), RunContext(out_dir=out))
    # model=tiny: random weights from the packaged folder's config.json, which counts too
    assert first["status"] == "ok" and set(first["inputs"]) == {"data.path", "model.name"}
    assert first["inputs"]["data.path"]["sha256"] == _sha(csv)
    again = run(_cfg(compose, csv), RunContext(out_dir=out))  # the same files: skipped
    assert again["started_at"] == first["started_at"]
    _csv(csv, flip=True)  # one label fixed: the same config, another data set
    with pytest.raises(ConfigError, match=r"says ok, but data.path \(a.csv\) changed since that run .* delete "):
        run(_cfg(compose, csv), RunContext(out_dir=out))
    assert json.loads((out / "results.json").read_text())["started_at"] == first["started_at"]  # left as it was


def test_a_checkpoint_of_other_data_is_not_continued(compose, tmp_path):
    from tunelab.errors import ConfigError
    from tunelab.ops.inputs import fingerprint
    from tunelab.run import RunContext, run

    csv, out = _csv(tmp_path / "a.csv"), tmp_path / "job"
    cfg = _cfg(compose, csv)
    # An interrupted job's record and checkpoint, made while the file held other rows.
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    from tunelab.ops.identity import job_identity

    old = {"status": "interrupted", "identity": job_identity(cfg), "inputs": {"data.path": {"path": str(csv), "sha256": "0" * 16}}}
    (out / "results.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=r"checkpoints in .* were trained while data.path \(a.csv\) held other"):
        run(cfg, RunContext(out_dir=out))
    # Without a checkpoint there is nothing of the old file to continue: the job runs.
    (out / "checkpoints" / "last.ckpt").unlink()
    assert run(cfg, RunContext(out_dir=out))["status"] == "ok"
    # A record from before tunelab kept inputs cannot tell: skipped as ok, as it always was.
    rec = json.loads((out / "results.json").read_text())
    assert rec["inputs"] == fingerprint(cfg)
    del rec["inputs"]
    (out / "results.json").write_text(json.dumps(rec))
    _csv(csv, flip=True)
    assert run(cfg, RunContext(out_dir=out))["started_at"] == rec["started_at"]


def test_a_sweeper_does_not_read_a_finished_job_of_other_files(tmp_path):
    """The adaptive and tune sweepers read finished jobs rather than relaunching them: one made
    from the file's old content stops the sweep (it would decide from two data sets as one)."""
    from tunelab.errors import ConfigError
    from tunelab.sweeps.jobs import JobSpec, run_wave

    csv, sweep = _csv(tmp_path / "a.csv"), tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    rec = {"status": "ok", "overrides": ["seed=0"], "metrics": {"val/acc": 0.8},
           "inputs": {"data.path": {"path": str(csv), "sha256": _sha(csv)}}}
    (sweep / "0" / "results.json").write_text(json.dumps(rec))
    launched = []
    specs = [JobSpec("s0", 0, ["seed=0"]), JobSpec("s1", 1, ["seed=1"])]
    run_wave(lambda batch, num: launched.append((num, batch)), sweep, specs)
    assert launched == [(1, [["seed=1"]])]  # the same file: job 0 is read, job 1 launched
    _csv(csv, flip=True)
    with pytest.raises(ConfigError, match=r"job .*sweep/0 finished ok while data.path \(a.csv\) held other content"):
        run_wave(lambda batch, num: launched.append((num, batch)), sweep, specs)
    assert len(launched) == 1
    # A study moved to another machine (its files elsewhere) cannot tell, and goes on.
    rec["inputs"]["data.path"]["path"] = str(tmp_path / "elsewhere.csv")
    (sweep / "0" / "results.json").write_text(json.dumps(rec))
    run_wave(lambda batch, num: launched.append((num, batch)), sweep, specs)
    assert launched[-1] == (1, [["seed=1"]])


def _hub_cache(root: Path, repo: str, commit: str) -> Path:
    """The Hugging Face cache's layout for one model (huggingface_hub's cache docs): a ``main`` ref
    naming the commit, and that commit's snapshot folder."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (folder / "snapshots" / commit / "config.json").write_text("{}")
    return folder


def test_a_hub_model_is_recorded_by_its_commit_and_a_push_is_seen(compose, tmp_path, monkeypatch):
    """A hub id is another model after a push to main: the record keeps the commit that loaded,
    and resume=auto refuses to skip the job once the cache (or the hub) holds another one."""
    from huggingface_hub import constants

    from tunelab.errors import ConfigError
    from tunelab.ops import inputs
    from tunelab.ops.identity import job_identity
    from tunelab.run import RunContext, run

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = "someone/encoder"
    cfg = compose(FAST + ["resume=auto", f"model.name={repo}"])
    assert "model.name" not in inputs.fingerprint(cfg)  # not cached: nothing to say yet
    folder = _hub_cache(tmp_path / "hub", repo, "a" * 40)
    assert inputs.fingerprint(cfg)["model.name"] == {"hub": repo, "revision": "a" * 40}
    assert inputs.hub_entries(cfg) == {"model.name": {"hub": repo, "revision": "a" * 40}}
    # An ok record made from commit a...: the same commit now is skipped without loading anything.
    out = tmp_path / "job"
    out.mkdir()
    rec = {"status": "ok", "identity": job_identity(cfg), "started_at": "then", "metrics": {"test/acc": 0.9},
           "inputs": {"model.name": {"hub": repo, "revision": "a" * 40}}}
    (out / "results.json").write_text(json.dumps(rec))
    assert run(cfg, RunContext(out_dir=out))["started_at"] == "then"
    # A push: the cache's main names commit b...; the old result is not served.
    _hub_cache(tmp_path / "hub", repo, "b" * 40)
    with pytest.raises(ConfigError, match=r"says ok, but model.name \(hub model someone/encoder\) changed"):
        run(cfg, RunContext(out_dir=out))
    assert inputs.stale(rec) == ["model.name"]
    # Online, the hub's main is asked (the cache is only updated by the next load).
    (folder / "refs" / "main").write_text("a" * 40)
    assert inputs.stale(rec) == []

    class Info:
        sha = "c" * 40
    monkeypatch.setattr(inputs, "_offline", lambda: False)
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda self, repo_id, timeout=None: Info())
    with pytest.raises(ConfigError, match=r"model.name \(hub model someone/encoder\) changed"):
        run(cfg, RunContext(out_dir=out))
    # No network and no cache (a study moved to another machine) cannot tell, and skips as before.
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    import shutil
    shutil.rmtree(folder)
    assert inputs.changed(rec["inputs"], inputs.asked(rec["inputs"], inputs.fingerprint(cfg))) == []
    assert run(cfg, RunContext(out_dir=out))["started_at"] == "then"


def test_a_hub_dataset_is_recorded_by_its_commit_and_a_push_is_seen(compose, tmp_path, monkeypatch):
    """data.hf_name=org/name is other data after a push to the dataset's main: load_dataset reads
    the card at main (writing refs/main in the HF cache) and the data files at that commit. The
    record keeps the commit; resume=auto refuses to serve the old result once main moved."""
    from huggingface_hub import constants

    from tunelab.errors import ConfigError
    from tunelab.ops import inputs
    from tunelab.ops.identity import job_identity
    from tunelab.run import RunContext, run

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = "someone/tweets"
    cfg = compose(FAST + ["resume=auto", "data=hf", f"data.hf_name={repo}", "data.text_column=sentence"])
    assert "data.hf_name" not in inputs.fingerprint(cfg)  # never loaded here: nothing to say yet
    refs = tmp_path / "hub" / f"datasets--{repo.replace('/', '--')}" / "refs"  # huggingface_hub's cache layout
    refs.mkdir(parents=True)
    (refs / "main").write_text("a" * 40)
    # a model of the same name is another repo: the key says which kind of repo a value names
    assert inputs.fingerprint(cfg)["data.hf_name"] == {"hub": repo, "type": "dataset", "revision": "a" * 40}
    out = tmp_path / "job"
    out.mkdir()
    rec = {"status": "ok", "identity": job_identity(cfg), "started_at": "then", "metrics": {"test/acc": 0.9},
           "inputs": {"data.hf_name": {"hub": repo, "type": "dataset", "revision": "a" * 40}}}
    (out / "results.json").write_text(json.dumps(rec))
    assert run(cfg, RunContext(out_dir=out))["started_at"] == "then"  # same commit: skipped, nothing loaded
    (refs / "main").write_text("b" * 40)  # an online load after a push moved main
    with pytest.raises(ConfigError, match=r"says ok, but data.hf_name \(hub dataset someone/tweets\) changed"):
        run(cfg, RunContext(out_dir=out))
    assert inputs.stale(rec) == ["data.hf_name"]
    # Online, the hub's main is asked, through the datasets API (not the models')
    (refs / "main").write_text("a" * 40)

    class Info:
        sha = "c" * 40
    monkeypatch.setattr(inputs, "_offline", lambda: False)
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda *a, **k: pytest.fail("asked the models API"))
    monkeypatch.setattr("huggingface_hub.HfApi.dataset_info", lambda self, repo_id, timeout=None: Info())
    with pytest.raises(ConfigError, match=r"data.hf_name \(hub dataset someone/tweets\) changed"):
        run(cfg, RunContext(out_dir=out))


def test_a_data_folder_is_recorded_by_every_file_in_it(compose, tmp_path):
    """data.source=bbc_dir reads one folder per class: a folder, not a file, and its articles were
    in no record — editing one left resume=auto skipping the job with the old data's result."""
    from tunelab.errors import ConfigError
    from tunelab.ops import inputs
    from tunelab.ops.identity import job_identity
    from tunelab.run import RunContext, run

    root = tmp_path / "news"
    for cls, words in (("sport", "match goal team"), ("tech", "chip phone code")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.txt").write_text(f"{words} {i}\n")
    (root / ".DS_Store").write_text("not data")  # hidden: not an input
    cfg = compose(FAST + ["resume=auto", "data=bbc_news", f"data.path={root}"])
    want = {f"{c}/{i}.txt": _sha(root / c / f"{i}.txt") for c in ("sport", "tech") for i in range(3)}
    assert inputs.fingerprint(cfg)["data.path"] == {"path": str(root), "files": want}
    out = tmp_path / "job"
    out.mkdir()
    rec = {"status": "ok", "identity": job_identity(cfg), "started_at": "then", "metrics": {"test/acc": 0.9},
           "inputs": {"data.path": {"path": str(root), "files": want}}}
    (out / "results.json").write_text(json.dumps(rec))
    assert run(cfg, RunContext(out_dir=out))["started_at"] == "then"  # same files: skipped
    (root / ".DS_Store").write_text("still not data")
    assert run(cfg, RunContext(out_dir=out))["started_at"] == "then"
    (root / "tech" / "2.txt").write_text("match goal team 2\n")  # an article relabelled by moving its words
    with pytest.raises(ConfigError, match=r"says ok, but data.path \(news\) changed"):
        run(cfg, RunContext(out_dir=out))
    assert inputs.stale(rec) == ["data.path"]


def test_a_tokenizer_folder_is_recorded_by_its_files(compose, tmp_path):
    """model.tokenizer=<folder>: a tokenizer folder holds no config.json, so it was in no record."""
    from tunelab.ops import inputs

    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    (tok / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    (tok / "README.md").write_text("notes")  # not a tokenizer file
    fp = inputs.fingerprint(compose(FAST + [f"model.tokenizer={tok}"]))
    assert fp["model.tokenizer"] == {"path": str(tok), "files": {"tokenizer_config.json": _sha(tok / "tokenizer_config.json"),
                                                                  "vocab.txt": _sha(tok / "vocab.txt")}}


def test_a_data_config_named_by_a_stage_or_a_corpus_is_recorded_by_its_files(compose):
    """curriculum stages and adapt.corpus name data configs (tweets_sentiment, bbc_news), whose
    files are in no leaf of the job's config: they are composed and recorded under <key>:data.path."""
    from tunelab.locate import resolve_local
    from tunelab.ops import inputs
    from tunelab.run import job_inputs  # what run() records

    tweets = resolve_local(compose(["data=tweets_sentiment"]).data.path)
    fp = job_inputs(compose(FAST + ["curriculum=related"]))
    stage_keys = sorted(k for k in fp if k.startswith("curriculum.stages."))
    assert stage_keys == [f"curriculum.stages.{i}.data:data.path" for i in range(4)]
    assert {fp[k]["sha256"] for k in stage_keys} == {_sha(tweets)}
    news = resolve_local(compose(["data=bbc_news"]).data.path)
    fp = job_inputs(compose(FAST + ["adapt=dapt", "adapt.corpus=bbc_news"]))
    files = fp["adapt.corpus:data.path"]["files"]
    assert len(files) == 2225 and files["tech/001.txt"] == _sha(news / "tech" / "001.txt")
    # a file given as the corpus stays a file entry of its own key
    fp = job_inputs(compose(FAST + ["adapt=dapt", f"adapt.corpus={tweets}"]))
    assert "adapt.corpus:data.path" not in fp and fp["adapt.corpus"]["sha256"] == _sha(tweets)
    assert not any(":" in k for k in inputs.fingerprint(compose(FAST + ["curriculum=related"])))  # nothing composed


def test_the_wordnet_an_eda_job_reads_is_recorded_by_its_files(compose, tmp_path, monkeypatch):
    """EDA's synonyms come from the WordNet directory the environment names ($TUNELAB_WORDNET), in
    no config value: another WordNet gives other training copies, so it is an input like the data."""
    from tunelab.ops import inputs
    from tunelab.run import job_inputs

    wn = tmp_path / "dict"
    wn.mkdir()
    for kind in ("index", "data"):
        for pos in ("noun", "verb", "adj", "adv"):
            (wn / f"{kind}.{pos}").write_text(f"{kind} {pos} 1\n")
    monkeypatch.setenv("TUNELAB_WORDNET", str(wn))
    csv = _csv(tmp_path / "a.csv")
    fp = job_inputs(_cfg(compose, csv, "augment=eda"))
    assert fp["augment.wordnet"]["files"]["data.noun"] == _sha(wn / "data.noun")
    assert len(fp["augment.wordnet"]["files"]) == 8
    # swap and deletion alone read no WordNet; nor does augment=none
    assert "augment.wordnet" not in job_inputs(_cfg(compose, csv, "augment=eda", "augment.alpha_sr=0",
                                                    "augment.alpha_ri=0"))
    assert "augment.wordnet" not in job_inputs(_cfg(compose, csv, "augment=none"))
    (wn / "data.noun").write_text("data noun 2\n")  # another WordNet in the same place
    now = job_inputs(_cfg(compose, csv, "augment=eda"))
    assert inputs.changed(fp, now) == ["augment.wordnet"]
    assert inputs.stale({"inputs": fp}) == ["augment.wordnet"]  # a sweeper reading the record sees it too
    assert inputs.say(["augment.wordnet"], fp) == "augment.wordnet (dict)"
