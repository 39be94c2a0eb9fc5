"""Bad input found by acting as a careless new user (each used to end in a traceback, the wrong
exit code, a message without the field and its fix, or a result that was silently wrong).

Every case goes through the real CLI and asserts exit code 2, one ``error:`` sentence naming the
key and the fix, and no traceback. Most answer before torch is imported (seconds each).
"""

from __future__ import annotations

from conftest import FAST, load_results


def _one_sentence(r) -> str:
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    return errors[0]


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
