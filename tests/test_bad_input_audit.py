"""Bad input found by acting as a careless new user (each used to end in a traceback, the wrong
exit code, a message without the field and its fix, or a result that was silently wrong).

Through the real CLI a case asserts exit code 2, one ``error:`` sentence naming the key and the
fix, and no traceback (most answer before torch is imported: seconds each); a data file's case
loads the splits in-process and asserts the DataError's sentence (train.py's exit 2 for any
TunelabError is tested in tests/test_bad_input_suite.py).
"""

from __future__ import annotations

import pytest

from conftest import FAST, load_results


def _one_sentence(r) -> str:
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    return errors[0]


def _split_error(compose, tmp_path, *overrides, rows: str = "") -> str:
    """The DataError a CSV of 40 'pos' and 40 'neg' tweets (or ``rows``) gets from the splits."""
    from conftest import load_splits
    from tunelab.errors import DataError

    p = tmp_path / "d.csv"
    p.write_text("text,label\n" + (rows or "".join(f"good day {i},pos\nbad day {i},neg\n" for i in range(40))))
    with pytest.raises(DataError) as info:
        load_splits(compose, "data=csv", f"data.path={p}", *overrides)
    return str(info.value)


def test_cache_dir_that_is_a_file_names_tunelab_cache(cli, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for where in (blocker, blocker / "sub"):
        msg = _one_sentence(cli(*FAST, env={"TUNELAB_CACHE": str(where)}))
        assert f"TUNELAB_CACHE={where} cannot be the cache folder ({blocker} is a file)" in msg
        assert "point TUNELAB_CACHE at a folder" in msg
    msg = _one_sentence(cli(*FAST, f"cache_dir={blocker}"))
    assert f"cache_dir={blocker} cannot be the cache folder" in msg
    assert load_results(tmp_path / "run" / "results.json")["status"] == "failed"


def test_ckpt_path_that_is_a_folder_says_which_file_to_give(cli, tmp_path):
    job = tmp_path / "job"
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "last.ckpt").write_bytes(b"")
    msg = _one_sentence(cli(*FAST, f"ckpt_path={job}"))
    assert f"ckpt_path={job} is a folder, not a checkpoint file (in it: {job}/checkpoints/last.ckpt)" in msg
    assert "give the .ckpt file itself" in msg


@pytest.mark.parametrize("override, says", [
    # ran "ok" with an untrained model (Lightning skips training on limit_train_batches=0)
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0.0 must be in (0, 1] (a fraction of the batches"),
    # the rest ended in Lightning's or scikit-learn's traceback (exit 1) after the model had loaded
    ("trainer.limit_val_batches=0", "trainer.limit_val_batches=0.0 must be in (0, 1]"),
    ("trainer.limit_test_batches=5", "trainer.limit_test_batches=5.0 must be in (0, 1]"),
    ("trainer.precision=17", "trainer.precision='17' is not one of ['16', '16-mixed',"),
    ("trainer.accelerator=gpuu", "trainer.accelerator='gpuu' is not one of ['auto', 'cpu', 'cuda', 'gpu',"),
    ("trainer.num_nodes=0", "trainer.num_nodes=0 must be >= 1."),
    ("data.split_seed=-1", "data.split_seed=-1 must be in [0, 4294967295]."),
])
def test_trainer_and_split_values_out_of_range_stop_at_start_up(cli, override, says):
    assert says in _one_sentence(cli(*FAST, override))


def test_trainer_settings_lightning_refuses_are_one_sentence(cli, tmp_path):
    """A strategy name, devices=0 or a package an accelerator needs are only known to Lightning
    when it builds the Trainer: that ended in its traceback (exit 1)."""
    from omegaconf import OmegaConf

    from tunelab.training import trainer_refusal

    msg = _one_sentence(cli(*FAST, "trainer.strategy=ddpp"))
    assert "Lightning refused trainer.strategy=ddpp (You selected an invalid strategy name" in msg
    assert "fix it, or choose a preset (trainer=cpu|cpu_bf16|gpu|ddp)" in msg
    assert load_results(tmp_path / "run" / "results.json")["error"]["type"] == "ConfigError"
    t = OmegaConf.create({"accelerator": "tpu", "devices": 0, "strategy": "auto", "precision": "32-true",
                          "num_nodes": 1})
    assert "trainer.devices=0 (`Trainer(devices=0)` value is not valid" in trainer_refusal(
        t, ValueError("`Trainer(devices=0)` value is not valid"))
    assert "trainer.accelerator=tpu" in trainer_refusal(t, ModuleNotFoundError("Requirement 'torch_xla' not met"))
    assert trainer_refusal(t, TypeError("unsupported operand type(s) for +")) is None  # a bug keeps its traceback


@pytest.mark.parametrize("overrides, says", [
    # Lightning's "Early stopping conditioned on metric" traceback after the first epoch (exit 1)
    (["task.monitor=val/accuracy"], "task.monitor=val/accuracy is not a metric task=seq_cls logs on validation "
                                    "(did you mean task.monitor=val/acc?): choose one of val/acc, val/f1,"),
    # ran "ok", keeping the checkpoint with the highest validation loss (seq_cls's monitor_mode is max)
    (["task.monitor=val/loss"], "task.monitor=val/loss is lower-is-better but task.monitor_mode=max: the worst "
                                "checkpoint would be kept; set task.monitor_mode=min."),
    (["task=mlm", "task.monitor_mode=max"], "set task.monitor_mode=min"),
])
def test_monitor_that_is_not_logged_or_points_the_wrong_way(cli, overrides, says):
    assert says in _one_sentence(cli(*FAST, *overrides))


def test_text_column_that_is_the_label_column(cli, tmp_path):
    # ran "ok": the model read each row's label as its text
    p = tmp_path / "d.csv"
    p.write_text("text,label\n" + "".join(f"good day {i},pos\nbad day {i},neg\n" for i in range(40)))
    msg = _one_sentence(cli(*FAST, "data=csv", f"data.path={p}", "data.text_column=label"))
    assert "data.text_column and data.label_column are both 'label'" in msg and "set data.text_column=" in msg


def test_a_sweep_over_an_empty_range_is_refused(cli, tmp_path):
    # launched 0 jobs, logged the report's traceback and exited 0
    msg = _one_sentence(cli("-m", *FAST, "seed=range(-2)"))
    assert "seed=range(-2) gives no value" in msg and "e.g. 'seed=range(3)'" in msg
    assert not (tmp_path / "sweep").exists()
    from tunelab.overrides import empty_sweep_error

    assert "seed=range(5,2) gives no value" in empty_sweep_error(["freeze=none,all", "seed=range(5,2)"])
    assert empty_sweep_error(["seed=range(2)", "optim.lr=tag(log, interval(1e-5, 1e-4))"]) is None


def test_ood_domains_that_take_out_every_training_row(compose, tmp_path):
    # said "test split: 0 examples are too few to hold out 10%", naming neither key nor fix
    rows = "".join(f"my iphone {i},pos\nmy ipad {i},neg\n" for i in range(40))
    assert _split_error(compose, tmp_path, "data.ood_domains=[apple]", rows=rows) == (
        "data.ood_domains=['apple'] takes every training row of data 'csv' out of domain, leaving nothing to train "
        "on; keep at least one topic in domain (rows per topic: apple 80).")


def test_a_launcher_refusing_its_settings_says_why(cli):
    # said only "Error in call to target '...ParallelLocalLauncher':", dropping the launcher's reason
    msg = _one_sentence(cli("-m", "hydra/launcher=parallel", "hydra.launcher.jobs=0", *FAST, "seed=0,1"))
    assert "ParallelLocalLauncher'; hydra.launcher.jobs=0: run at least one job at a time" in msg


def test_multirun_flag_after_an_override(cli):
    # argparse: "unrecognized arguments: seed=0,1" (exit 2, no fix said): the flag means the same anywhere
    from tunelab.overrides import multirun_flag_first

    r = cli(*FAST, "-m", "optim.lr=-1,-2")  # two jobs that fail at start-up: a sweep, recorded
    assert "unrecognized arguments" not in r.stderr and "2 jobs: 0 ok, 2 failed" in r.stdout, r.stderr[-2000:]
    assert multirun_flag_first(["a=1", "--multirun", "b=1,2"]) == ["--multirun", "a=1", "b=1,2"]
    assert multirun_flag_first(["-m", "a=1"]) == ["-m", "a=1"]
    assert multirun_flag_first(["a=1"]) == ["a=1"]


def test_drop_labels_that_leave_under_two_classes_name_the_key(compose, tmp_path):
    # said "only one class ([])", naming neither data.drop_labels nor the fix
    for drop, says in (("[pos,neg]", "no class ([])"), ("[pos]", "only one class (['neg'])")):
        msg = _split_error(compose, tmp_path, f"data.drop_labels={drop}")
        assert says in msg and "(after data.drop_labels=" in msg
        assert "drop fewer labels" in msg


def test_a_model_path_that_does_not_exist_is_said_before_torch_loads(cli, tmp_path):
    # was "model.name: '...' does not exist." after ~10 s of imports, with no fix
    for key in ("model.name", "model.path"):
        msg = _one_sentence(cli(*FAST, f"{key}=./no_such_model"))
        assert f"{key}=./no_such_model: no such folder (relative paths are taken from {tmp_path})" in msg
        assert "fix the path, or use the packaged model (model=minilm)" in msg


def test_optuna_search_of_no_trials(cli):
    # Optuna's "ValueError: No trials are completed yet." and exit 1
    msg = _one_sentence(cli("-m", "hparams_search=optuna", "hydra.sweeper.n_trials=0", *FAST))
    assert "hydra.sweeper.n_trials=0: the search needs at least 1 (e.g. hydra.sweeper.n_trials=20)." in msg


def test_a_listed_label_that_no_row_has(compose, tmp_path):
    # the fixes offered were a larger validation split, more data or data.drop_labels, and the
    # label was said to be "in under 5 rows": it is in none; the fix is data.labels itself
    assert _split_error(compose, tmp_path, "data.labels=[pos,neg,neutral]") == (
        "data 'csv': data.labels lists 'neutral', which no row of the data has: remove it from data.labels (or "
        "check data.label_column=label).")


def test_test_size_zero_without_a_test_file(compose, tmp_path):
    # the fix said was "lower data.test_size", which is already 0
    assert _split_error(compose, tmp_path, "data.test_size=0").endswith(
        "the test split is empty; set data.test_size above 0 (e.g. 0.1) or give data.test_path.")


def test_an_unquoted_value_the_grammar_reserves_gets_the_quoted_spelling(cli):
    # "could not be parsed (LexerNoViableAltException: data.delimiter=;)" and nothing on how to write it
    msg = _one_sentence(cli("--cfg", "job", "data.delimiter=;"))
    assert "(quote a value with such characters: 'data.delimiter=\";\"')" in msg
    assert "quote a value" not in _one_sentence(cli("--cfg", "job", "optim.lr=[1"))


def test_cfg_and_multirun_together(cli):
    # Hydra's ValueError, reported as a crash (exit 1)
    msg = _one_sentence(cli("--cfg", "job", "-m", "seed=0,1"))
    assert "Only one of --run, --multirun, --cfg" in msg and "run the sweep with -m alone" in msg


def test_status_of_a_path_that_is_not_a_dir(tmp_path, capsys):
    # said "no job dirs in '...'" as for an empty sweep dir, whether the path did not exist or was a file
    from tunelab import cli

    (tmp_path / "afile").write_text("x")
    for p in (tmp_path / "nope", tmp_path / "afile"):
        assert cli.main(["status", str(p), "--no-sacct"]) == 2
        err = capsys.readouterr().err
        assert f"'{p}' is not a sweep dir (it does not exist or is a file): give the dir a sweep wrote" in err
