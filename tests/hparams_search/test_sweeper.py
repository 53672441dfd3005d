"""The sweeper loop with a scripted launcher (no training): trial states, the overrides each job gets,
stopping at n_trials, joining an existing study, and giving up on repeated failures."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

from medseg.hparams_search.sweeper import OptunaStudySweeper


class ScriptedLauncher:
    """Returns the next scripted outcome for each job: a float, or an exception the job raised."""

    def __init__(self, outcomes):
        self.outcomes, self.calls = list(outcomes), []

    def launch(self, batch, initial_job_idx):
        self.calls.append((batch, initial_job_idx))
        rets = []
        for overrides in batch:
            out = self.outcomes.pop(0)
            status = JobStatus.FAILED if isinstance(out, BaseException) else JobStatus.COMPLETED
            rets.append(JobReturn(overrides=overrides, status=status, _return_value=out))
        return rets


@pytest.fixture
def make_sweeper(tmp_path, train_cfg):
    def make(outcomes, **kwargs):
        cfg, _ = train_cfg(["hparams_search=vessels_optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
        return _sweeper(cfg, outcomes, **kwargs)

    return make


def _sweeper(cfg, outcomes, **kwargs):
    sw = OptunaStudySweeper(study_name="fake", n_trials=kwargs.pop("n_trials", 3), summary=False,
                             sampler={"_target_": "optuna.samplers.RandomSampler", "seed": 0},
                             params={"optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
                                     "model": "choice(unet, unet2)"}, **kwargs)
    sw.config, sw.hydra_context = cfg, SimpleNamespace(config_loader=None)
    sw.launcher = ScriptedLauncher(outcomes)
    sw.validate_batch_is_legal = lambda batch: None  # would compose each job's config
    return sw


def load(tmp_path):
    return optuna.load_study(study_name="fake", storage=f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}")


def test_outcomes_become_trial_states_until_n_trials_finish(tmp_path, make_sweeper):
    sw = make_sweeper([0.5, optuna.TrialPruned("epoch 1"), RuntimeError("CUDA OOM"), 0.7])
    sw.sweep(["trainer.max_epochs=2"])
    trials = load(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                         TrialState.COMPLETE]
    assert [t.value for t in trials if t.state == TrialState.COMPLETE] == [0.5, 0.7]
    batch, idx = sw.launcher.calls[3]
    overrides = batch[0]
    assert idx == 3  # the job number is the trial number: distinct folders across reruns
    assert overrides[0] == "trainer.max_epochs=2"
    assert any(o.startswith("optimizer.lr=") for o in overrides)
    assert overrides[-1].startswith("++optuna_trial={study_name:'fake',storage:'sqlite:///")
    assert overrides[-1].endswith("number:3}")
    assert trials[3].user_attrs["overrides"] == overrides[:-1]


def test_a_second_sweep_joins_the_study_and_runs_only_the_rest(tmp_path, make_sweeper):
    make_sweeper([0.1, 0.2], n_trials=2).sweep([])
    first = load(tmp_path).trials
    sw = make_sweeper([0.3, 0.4, 0.5], n_trials=4)
    sw.sweep([])
    trials = load(tmp_path).trials
    assert len(sw.launcher.calls) == 2 and len(trials) == 4
    assert [(t.params, t.value) for t in trials[:2]] == [(t.params, t.value) for t in first]
    # the sampler's seed is offset on resume: the new trials do not replay the first draws
    assert trials[2].params != trials[0].params


def test_repeated_failures_stop_the_sweep(tmp_path, make_sweeper):
    sw = make_sweeper([ValueError("bad config")] * 5, n_trials=5, max_consecutive_failures=2)
    with pytest.raises(RuntimeError, match="2 trials failed in a row"):
        sw.sweep([])
    assert [t.state for t in load(tmp_path).trials] == [TrialState.FAIL] * 2


def test_sweep_end_and_failure_are_posted_to_the_webhook(tmp_path, make_sweeper, monkeypatch):
    from medseg.hparams_search import sweeper

    posted = []
    monkeypatch.setattr(sweeper, "post_message", lambda url, text, *a, **k: posted.append((url, text)))
    make_sweeper([0.25, 0.5], n_trials=2, notify_url="http://127.0.0.1:9/hook").sweep([])
    assert posted == [("http://127.0.0.1:9/hook",
                       ":white_check_mark: sweep 'fake' finished: 2 complete trials, best trial 1: 0.5000")]
    with pytest.raises(RuntimeError):
        make_sweeper([ValueError("bad")] * 3, n_trials=5, notify_url="http://127.0.0.1:9/hook").sweep([])
    assert posted[-1][1].startswith(":x: sweep 'fake' failed: RuntimeError: 3 trials failed in a row")
