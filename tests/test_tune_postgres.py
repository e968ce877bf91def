"""Two `micrograd tune` processes share one study through a PostgreSQL URL (issue 13).

They stand for two machines: each has its own study folder (so no file lock is
shared, only the database) and both get the same `--study`, `--storage` and
`--trials N`. The study must end with exactly N finished trials, numbered
without gaps or repeats, and with trials from both processes.

Needs a server: CI's .ci/postgres.sh starts one on loopback and exports its
SQLAlchemy URL as MICROGRAD_TEST_POSTGRES. Without that variable, or without
optuna and the PostgreSQL driver (the `tune` extra), the test skips.
"""
import os
import subprocess
import sys
import uuid

import pytest

from conftest import LINEAR, write_config

URL = os.environ.get("MICROGRAD_TEST_POSTGRES")
if not URL:
    pytest.skip("MICROGRAD_TEST_POSTGRES is not set (.ci/postgres.sh starts a server and "
                "prints the URL)", allow_module_level=True)
optuna = pytest.importorskip("optuna", reason="the tune extra (optuna) is not installed")
sqlalchemy = pytest.importorskip("sqlalchemy")

TRIALS = 6
# Long enough a trial (about 1 s here) that neither process can finish the whole
# study while the other is still starting up.
EPOCHS = 600


@pytest.fixture
def storage():
    """The server's optuna storage, with its tables created before any worker starts."""
    try:
        dialect = sqlalchemy.engine.make_url(URL).get_dialect()
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()  # SQLAlchemy 2, 1.4
    except ImportError as exc:
        pytest.skip(f"no driver for {URL.split(':', 1)[0]} ({exc}); the tune extra brings it")
    # A set variable means a server is meant to be there: unreachable is a failure.
    return optuna.storages.RDBStorage(URL)


def _tune(config, space, out, study, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "micrograd_cli.main", "tune", str(config), "--space", str(space),
         "--trials", str(TRIALS), "--storage", URL, "--study", study, "--out", str(out),
         "--sampler", "random", "--no-prune"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_share_one_study_through_postgresql(tmp_path, storage):
    config = write_config(tmp_path, {**LINEAR, "train": {**LINEAR["train"], "epochs": EPOCHS}})
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.lr: {type: float, low: 0.001, high: 0.02, log: true}\n")
    study = f"test-postgres-{uuid.uuid4().hex[:12]}"
    procs = []
    try:
        procs += [_tune(config, space, tmp_path / f"machine-{i}", study, tmp_path)
                  for i in (1, 2)]
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        for p, out in zip(procs, outputs):
            assert p.returncode == 0, out

        trials = optuna.load_study(study_name=study, storage=storage).get_trials()
        states = optuna.trial.TrialState
        finished = [t for t in trials if t.state == states.COMPLETE]
        assert len(finished) == TRIALS, [(t.number, t.state.name) for t in trials]
        assert sorted(t.number for t in finished) == list(range(TRIALS))
        assert all(t.value is not None and "optimizer.lr" in t.params for t in finished)
        # Nothing left half-done; a trial that lost the race for the last places is
        # failed and marked surplus, never counted.
        for t in trials:
            if t.state != states.COMPLETE:
                assert t.state == states.FAIL and t.user_attrs.get("surplus"), \
                    (t.number, t.state.name, t.user_attrs)
        # Both "machines" ran trials, each in its own folder.
        assert {t.user_attrs.get("pid") for t in finished} == {p.pid for p in procs}
        for t in finished:
            i = 1 + [p.pid for p in procs].index(t.user_attrs["pid"])
            assert (tmp_path / f"machine-{i}" / t.user_attrs["run_dir"] / "config.yaml").is_file()
        # The report counts the whole study, not a process's share; the process that
        # ends first may see the other's last trial still running.
        assert any(f"\n{TRIALS} trials (0 pruned)" in out for out in outputs), outputs
    finally:
        for p in procs:  # still running only when the test failed early
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            optuna.delete_study(study_name=study, storage=storage)
        except KeyError:  # never created: the processes failed before it
            pass
