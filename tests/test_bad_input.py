"""Bad input: one clear error naming the file/row/key and the fix; nothing written as ok."""

from __future__ import annotations


import pytest

from conftest import FAST, load_results, load_splits


def _csv(tmp_path, text, name="d.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


CASES = {
    "missing file": (lambda t: "nope.csv", [], r"data.path: file not found: 'nope.csv'"),
    "missing column": (lambda t: _csv(t, "txt,label\nhello,pos\nbye,neg\n"), [],
                       r"no column 'text' \(asked for by data.text_column\).*Columns in the file: \['txt', 'label'\]"),
    "unknown label": (lambda t: _csv(t, "text,label\n" + "good day,pos\nbad day,neg\n" * 10 + "meh,maybe\n"),
                      ["data.labels=[neg,pos]"],
                      r"data.path=\S*d.csv \(train split\): row 22 \('meh'\) has label 'maybe', not in data.labels=\['neg', 'pos'\]"),
    # rows left out before the check (a dropped label, a held-out topic) leave the file's row right:
    # 'meh' is line 24 of the file, the 20th example once the two 'junk' rows are dropped
    "unknown label after a drop": (lambda t: _csv(t, "text,label\nx,junk\ny,junk\n" + "good day,pos\nbad day,neg\n" * 10
                                                  + "meh,maybe\n"), ["data.labels=[neg,pos]", "data.drop_labels=[junk]"],
                                   r"d.csv \(train split\): row 24 \('meh'\) has label 'maybe'"),
    "empty text": (lambda t: _csv(t, "text,label\n" + "good,pos\n" * 5 + ",neg\n"), [],
                   r"row 7: empty text in column 'text'"),
    "wrong encoding": (lambda t: _csv(t, "text,label\n" + "café,pos\nbad,neg\n" * 5, encoding="latin-1"), [],
                       r"not valid utf-8 .*data.encoding=latin-1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_csv_inputs(compose, tmp_path, monkeypatch, case):
    """In-process (fast): the same run() train.py calls; the CLI path is covered below."""
    from tunelab.errors import DataError
    from tunelab.run import RunContext, run

    make, extra, pattern = CASES[case]
    monkeypatch.chdir(tmp_path)
    path = make(tmp_path)
    cfg = compose([*FAST, "data=csv", f"data.path={path}", *extra])
    with pytest.raises(DataError, match=pattern):
        run(cfg, RunContext(out_dir=tmp_path / "run"))
    res = load_results(tmp_path / "run" / "results.json")
    assert res["status"] == "failed" and res["error"]["type"] == "DataError"


def test_bad_csv_through_the_cli_exits_2_without_traceback(cli, tmp_path):
    p = _csv(tmp_path, "txt,label\nhello,pos\nbye,neg\n")
    r = cli(*FAST, "data=csv", f"data.path={p}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no column 'text'" in r.stderr and "Traceback" not in r.stderr
    assert load_results(tmp_path / "run" / "results.json")["status"] == "failed"


def test_ner_token_tag_mismatch_names_the_line(compose, tmp_path):
    from tunelab.errors import DataError

    p = tmp_path / "ner.txt"
    p.write_text("Paris\tB-loc\nis\tO\n\nBerlin\nrocks\tO\n")
    with pytest.raises(DataError, match=r"ner.txt: line 4: expected 'token<TAB>tag'"):
        load_splits(compose, "task=token_cls", "data=conll", f"data.path={p}")


def test_ner_tag_that_is_not_bio(compose, tmp_path):
    from tunelab.errors import DataError

    p = tmp_path / "ner.txt"
    p.write_text("Paris\tLOCATION\nis\tO\n")
    with pytest.raises(DataError, match=r"sentence at line 1: tag 'LOCATION' is not BIO"):
        load_splits(compose, "task=token_cls", "data=conll", f"data.path={p}")


def test_jsonl_bad_line(compose, tmp_path):
    from tunelab.errors import DataError

    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"d.jsonl: line 2: not valid JSON"):
        load_splits(compose, "data=jsonl", f"data.path={p}")


def test_unknown_group_option(cli):
    r = cli(*FAST, "freeze=last3")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "freeze/last3" in r.stderr and "(the options: all, bitfit, embeddings, first_n, gradual, last2, last_n," in r.stderr


def test_dropped_rows_are_counted_not_silent(compose, tmp_path, caplog):
    import logging

    from tunelab.run import RunContext, run

    # 24 rows per class: enough for 2 of each in the validation and test splits (splits.MIN_PER_CLASS)
    p = _csv(tmp_path, "text,label\n" + "good day,pos\nbad day,neg\nok day,neutral\n" * 24)
    cfg = compose([*FAST, "data=csv", f"data.path={p}", "data.labels=[neg,pos]", "data.drop_labels=[neutral]",
                   "trainer.enable_checkpointing=false"])
    with caplog.at_level(logging.INFO, logger="tunelab"):
        rec = run(cfg, RunContext(out_dir=tmp_path / "run"))
    assert rec["extra"]["dropped_rows"] == {"train: label in data.drop_labels ['neutral']": 24}
    assert "dropped 24 rows" in caplog.text


def test_directory_as_data_file(compose, tmp_path):
    from tunelab.errors import DataError

    with pytest.raises(DataError, match=r"is a directory; data.path must name a file"):
        load_splits(compose, "data=csv", f"data.path={tmp_path}")


def test_drug_zip_that_is_not_a_zip(compose, tmp_path):
    from tunelab.errors import DataError

    p = _csv(tmp_path, "review\trating\ngood\tpositive\n", name="reviews.tsv")
    with pytest.raises(DataError, match=r"reviews.tsv: not a zip archive"):
        load_splits(compose, "data=drug_reviews", f"data.path={p}")


@pytest.mark.parametrize("args, node", [(["freeze=last2", "freeze.probe.fit=head"], "freeze.probe"),
                                        (["curriculum.stages=[tweets_sentiment]"], "curriculum"),
                                        (["augment.alpha_sr=0.2"], "augment")])
def test_key_under_a_null_group_is_one_sentence(cli, args, node):
    r = cli(*args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "AssertionError" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and f"'{node}' is null" in err[0], err


def test_null_group_check_leaves_valid_overrides_alone():
    from tunelab.overrides import null_override_error

    assert null_override_error(["freeze=all", "freeze.probe.fit=head"]) is None
    assert null_override_error(["experiment=forgetting", "curriculum.max_train_samples=5"]) is None
    assert null_override_error(["adapt=tapt", "adapt.epochs=1"]) is None
    assert null_override_error(["-m", "freeze=none,all", "freeze.probe.fit=head"]) is None  # sweeps: multirun_argv


# A multirun composes its primary config without the sweep overrides, so a key inside a node that
# a swept group chooses is carried to each job as a one-value sweep (tunelab.overrides.multirun_argv).
def test_multirun_key_under_a_swept_group_becomes_a_one_value_sweep():
    from tunelab.overrides import as_one_value_sweep, multirun_argv

    argv = ["-m", "curriculum=related,unrelated", "optim.lr=1e-4", "curriculum.max_train_samples=600",
            "curriculum.stages=[a,b]", "curriculum.name='x y'", "seed=1,2"]
    assert multirun_argv(argv) == (["-m", "curriculum=related,unrelated", "optim.lr=1e-4",
                                    "curriculum.max_train_samples=choice(600)", "curriculum.stages=choice([a,b])",
                                    "curriculum.name=choice('x y')", "seed=1,2"], None)
    # a node the primary config already has is left alone; choice(null) is not legal Hydra
    assert multirun_argv(["-m", "freeze=all", "seed=1,2", "freeze.probe.fit=head"]) == (
        ["-m", "freeze=all", "seed=1,2", "freeze.probe.fit=head"], None)
    assert as_one_value_sweep("curriculum.stages=null") == "curriculum.stages=null"
    assert as_one_value_sweep("curriculum.name=") == "curriculum.name=choice('')"


@pytest.mark.parametrize("args, key, job", [
    (["freeze=all,last2", "freeze.probe.fit=head"], "freeze.probe.fit", "freeze=last2"),
    (["experiment=forgetting,hart2020", "curriculum.max_train_samples=6"], "curriculum.max_train_samples",
     "experiment=hart2020"),
    (["seed=1,2", "curriculum.max_train_samples=6"], "curriculum.max_train_samples", "every job")])
def test_multirun_key_null_in_some_job_names_that_job(args, key, job):
    from tunelab.overrides import multirun_argv

    argv, msg = multirun_argv(["-m", *args])
    assert argv == ["-m", *args]
    assert msg.startswith(f"cannot set {key}:") and job in msg, msg


def test_multirun_key_null_in_some_job_exits_2_in_one_sentence(cli):
    r = cli("-m", "freeze=all,last2", "freeze.probe.fit=head", *FAST)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "freeze=last2" in err[0] and "Traceback" not in r.stderr, err


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_multirun_key_under_a_swept_group_reaches_every_job(cli, tmp_path):
    import yaml

    r = cli("-m", "curriculum=related,unrelated", "curriculum.max_train_samples=40", "curriculum.max_eval_samples=20",
            "curriculum.baselines=false", "curriculum.heatmap=false", *FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    for job, name in (("0", "related"), ("1", "unrelated")):
        d = tmp_path / "sweep" / job
        cfg = yaml.safe_load((d / ".hydra" / "config.yaml").read_text())
        assert cfg["curriculum"]["max_train_samples"] == 40
        # the job's own overrides (override_dirname, reports, W&B tags) show the plain key=value
        assert yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())[:2] == [
            f"curriculum={name}", "curriculum.max_train_samples=40"]
        assert (d / "results.json").is_file()
    from tunelab.loggers import sweep_keys

    assert sweep_keys(tmp_path / "sweep") == {"curriculum"}  # choice(40) varies nothing: no W&B tag
