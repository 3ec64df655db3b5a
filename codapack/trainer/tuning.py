"""Hyperparameter search with KerasTuner over a config's declared search space.

KerasTuner's oracles choose the values (random, grid, Bayesian optimisation, Hyperband); the
`ConfigTuner` below turns each trial's values into config edits and trains it with codapack's own
`train_run` into an ordinary run directory, `OUT/runs/trial_ID`. The search state lives in OUT
itself (KerasTuner's project folder), so running the same command again continues a killed search:
finished trials are not repeated, and an interrupted trial resumes from its epoch checkpoint.

Distributed search is KerasTuner's own chief/worker mode: the chief serves the oracle over gRPC
(KERASTUNER_ORACLE_IP / _PORT), each worker (KERASTUNER_TUNER_ID) asks it for trials and reports
results; `search_environment` sets these variables from `--role` and `--oracle`.
"""

import contextlib
import dataclasses
import os
import time
from concurrent import futures

import keras_tuner

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.trainer import run_dir, search_space
from codapack.trainer.checkpoint import Checkpoint
from codapack.trainer.config import config_from_raw, read_raw
from codapack.trainer.overrides import apply_overrides, toml_value
from codapack.trainer.search_space import OBJECTIVES
from codapack.trainer.training import train_run

RUNS = "runs"
POLL_S = 0.5


@dataclasses.dataclass(frozen=True)
class Search:
    """One search: what to tune, on what, and how.

    Args:
        config_path: a config with search declarations (see trainer/search_space.py).
        data_path: the competition `.npz`.
        out_dir: the search folder (KerasTuner's project, trial run directories, reports).
        tuner: random, grid, bayesian or hyperband.
        trials: the most trials to run in all (over restarts).
        overrides: --set edits applied before the search values.
        objective: val_accuracy or val_f1_macro, maximised.
        seed: the oracle's seed.
        max_epochs: Hyperband's largest budget in epochs; 0: the config's total epochs.
    """

    config_path: str
    data_path: str
    out_dir: str
    tuner: str = "random"
    trials: int = 10
    overrides: tuple = ()
    objective: str = "val_accuracy"
    seed: int = 0
    max_epochs: int = 0

    def base_raw(self):
        """The config's TOML after --set, search declarations still in it."""
        return apply_overrides(read_raw(self.config_path), self.overrides, self.config_path)


def make_oracle(search, params, default_epochs):
    """The KerasTuner oracle for `search.tuner`, searching the declared parameters only."""
    kwargs = dict(objective=keras_tuner.Objective(search.objective, "max"), seed=search.seed,
                  hyperparameters=search_space.hyperparameters(params), tune_new_entries=False,
                  allow_new_entries=False)
    if search.tuner == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=search.trials, **kwargs)
    if search.tuner == "grid":
        return keras_tuner.oracles.GridSearchOracle(max_trials=search.trials, **kwargs)
    if search.tuner == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=search.trials, **kwargs)
    oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=search.max_epochs or default_epochs, factor=3, **kwargs)
    oracle.max_trials = search.trials  # Hyperband sizes its brackets itself; this caps the total
    return oracle


class ConfigTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """A KerasTuner tuner whose trials are codapack training runs.

    Args:
        search: the `Search`.
        params: the declared `search_space.Param`s.
        profile: the competition `Profile`.
        oracle: from `make_oracle`.
    """

    def __init__(self, search, params, profile, oracle):
        self.search_settings, self.params, self.profile = search, params, profile
        self.dataset = None  # loaded by the first trial this process runs, then shared by the others
        self.trials_run = []
        out = os.path.abspath(search.out_dir)
        super().__init__(oracle, directory=os.path.dirname(out), project_name=os.path.basename(out), overwrite=False)

    def search(self, *args, **kwargs):
        """Run trials; on the chief, serve the oracle to the workers until they have run them all."""
        if is_chief():
            self.save()
            serve_oracle(self.oracle)
            return
        super().search(*args, **kwargs)

    def run_dir_of(self, trial_id):
        return os.path.join(os.path.abspath(self.search_settings.out_dir), RUNS, f"trial_{trial_id}")

    def run_trial(self, trial, *args, **kwargs):
        """Train the trial's configuration and return its validation metrics."""
        values = trial_values(self.params, trial.hyperparameters.values)
        edits = [f"{path}={toml_value(value)}" for path, value in values.items()]
        raw = search_space.with_values(self.search_settings.base_raw(), values)
        hyperband = trial.hyperparameters.values.get("tuner/epochs")
        out, initial_weights = self.run_dir_of(trial.trial_id), None
        if hyperband:
            start, initial_weights = self._continued_from(trial.hyperparameters.values)
            raw = epoch_budget(raw, hyperband, start)
            edits.append(f"# hyperband: epochs {start}..{hyperband}")
        if os.path.isfile(os.path.join(out, run_dir.RUN_FILE)):  # trained before the search was killed
            record = run_dir.read_run(out)
        else:
            try:
                config = config_from_raw(raw, self.search_settings.config_path,
                                         tuple(self.search_settings.overrides) + tuple(edits))
                if self.dataset is None:  # loaded once, by the first trial that trains
                    self.dataset = load_dataset(self.search_settings.data_path, self.profile)
                record = train_run(config, self.dataset, out, self.profile,
                                   resume=Checkpoint(out).exists(), initial_weights=initial_weights,
                                   extra={"trial": {"id": trial.trial_id, "values": values}})
            except CodapackError as exc:  # this trial's values do not make a valid run; the search goes on
                print(f"trial {trial.trial_id} failed: {exc}", flush=True)
                raise keras_tuner.errors.FailedTrialError(str(exc)) from None
        self.trials_run.append(trial.trial_id)
        val = record["metrics"]["val"]
        metrics = dict(zip(OBJECTIVES, (val["accuracy"], val["f1_macro"])))
        shown = ", ".join(f"{path}={value}" for path, value in values.items())
        print(f"trial {trial.trial_id}: {self.search_settings.objective} "
              f"{metrics[self.search_settings.objective]:.4f} ({shown}) -> {out}", flush=True)
        return metrics

    def _continued_from(self, hp_values):
        """Hyperband's continued trial: (epochs already trained, weights of the trial it continues)."""
        previous = hp_values.get("tuner/trial_id")
        weights = os.path.join(self.run_dir_of(previous), run_dir.WEIGHTS_FILE) if previous else None
        if weights and os.path.isfile(weights):
            return hp_values.get("tuner/initial_epoch", 0), weights
        return 0, None  # the earlier trial ran on another machine: train the whole budget here


def is_chief():
    """Whether this process is the search's chief, by KerasTuner's documented environment variables."""
    keys = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
    return all(key in os.environ for key in keys) and os.environ["KERASTUNER_TUNER_ID"] == "chief"


def serve_oracle(oracle):
    """Serve `oracle` to the workers over gRPC until every trial has ended and every worker has left.

    This is KerasTuner's chief (`oracle_chief.start_server`: its servicer, protocol and exit test),
    except that it checks for the end twice a second where KerasTuner sleeps 20 s between checks.
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}")
    server.start()
    print(f"chief: serving the oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
          f"{os.environ['KERASTUNER_ORACLE_PORT']}", flush=True)
    while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
        time.sleep(POLL_S)
    server.stop(grace=5).wait()


def trial_values(params, hp_values):
    """{config path: config value} of the declared parameters a trial set."""
    return {p.path: p.value_of(hp_values[p.path]) for p in params if p.path in hp_values}


def epoch_budget(raw, epochs, start=0):
    """A config trained for epochs `start`..`epochs` of its phase schedule (Hyperband's budgets).

    The phases are cut at `epochs` in all (the last one lengthened when they are shorter), then
    the first `start` epochs, which the continued trial's weights have already trained, are removed.
    """
    raw = dict(raw)
    one_phase = "phases" not in raw
    phases = [dict(raw.get("training", {}))] if one_phase else [dict(p) for p in raw["phases"]]
    lengths = [p.get("epochs", 10) for p in phases]
    kept, done = [], 0
    for phase, length in zip(phases, lengths):
        end = min(done + length, epochs)
        if phase is phases[-1]:
            end = epochs
        run = end - max(done, start)
        if run > 0:
            kept.append(dict(phase, epochs=run))
        done = end
        if done >= epochs:
            break
    if one_phase:
        raw["training"] = kept[0]
    else:
        raw["phases"] = kept
    return raw


@contextlib.contextmanager
def search_environment(role, oracle_address, worker_id):
    """Set KerasTuner's distributed-search variables for `role` while the block runs.

    Args:
        role: single (no variables), chief or worker.
        oracle_address: HOST:PORT the chief serves on and workers connect to.
        worker_id: this worker's KERASTUNER_TUNER_ID (stable across restarts so a restarted
            worker picks its unfinished trial back up).
    """
    names = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
    saved = {name: os.environ.get(name) for name in names}
    if role != "single":
        host, _, port = (oracle_address or "").rpartition(":")
        if not host or not port.isdigit():
            raise CodapackError(f"--role {role} needs --oracle HOST:PORT (the chief's address). "
                                f"Received: {oracle_address!r}")
        os.environ.update(KERASTUNER_TUNER_ID="chief" if role == "chief" else worker_id,
                          KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=port)
    else:
        for name in names:
            os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_search(search, profile, role="single", oracle_address=None, worker_id=None):
    """Run (or continue) a search; the chief serves trials until the workers have run them all.

    Returns:
        (the `ConfigTuner`, the declared params); the trials it ran itself are in `tuner.trials_run`.

    Raises:
        CodapackError: no search declarations, or a config that does not train with its defaults.
    """
    raw = search.base_raw()
    params = search_space.find_params(raw, search.config_path)
    if not params:
        raise CodapackError(f"{search.config_path}: declares nothing to search; write a value as e.g. "
                            f"learning_rate = {{ default = 1e-3, min = 1e-4, max = 1e-2, sampling = \"log\" }}")
    default = config_from_raw(raw, search.config_path, search.overrides)  # fails fast on a bad config
    with search_environment(role, oracle_address, worker_id or f"worker-{os.uname().nodename}-{os.getpid()}"):
        tuner = ConfigTuner(search, params, profile, make_oracle(search, params, default.epochs))
        tuner.search(verbose=0)
    return tuner, params
