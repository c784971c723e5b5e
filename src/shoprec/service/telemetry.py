"""Process-wide Prometheus metrics of the back office (jobs, training, retraining, model loads), defined once here
so that every part records into the same series:

    telemetry.JOBS.labels(kind="train", status="succeeded").inc()
    with telemetry.JOB_SECONDS.labels(kind="train").time(): ...
    telemetry.TRAIN_SECONDS.labels(platform="shop", model="transformer").observe(seconds)
    telemetry.RETRAIN_DECISIONS.labels(platform="shop", decision="promoted").inc()
    telemetry.MODEL_LOADS.labels(platform="shop", outcome="loaded").inc()   # or "failed"
    telemetry.MODEL_LOAD_SECONDS.labels(platform="shop").observe(seconds)
    telemetry.REFUSED_ANONYMOUS_BODIES.labels(reason="no_key").inc()       # an anonymous body refused early

They live in REGISTRY (not prometheus_client's global one). The API's /metrics shows them with its own.
Under `shoprec serve` every child process (API workers, the embedded job worker) runs in prometheus_client's
multiprocess mode (set by the supervisor's child bootstrap before anything imports prometheus_client): values
are written to files in one directory and /metrics adds up every process's, so a counter reads the same
whichever worker answers the scrape.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable (not a shoprec setting)


def multiprocess_dir() -> str | None:
    """The directory this process's metrics are shared through (set by the supervisor's child bootstrap,
    shoprec.api.workers), None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or None


REGISTRY = CollectorRegistry()
SECONDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)  # jobs and training
LOAD_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)

JOBS = Counter("shoprec_jobs", "Jobs finished, by kind and final status (succeeded, failed, cancelled)",
               ["kind", "status"], registry=REGISTRY)
JOB_SECONDS = Histogram("shoprec_job_seconds", "Job run time (claimed to finished)", ["kind"], buckets=SECONDS,
                        registry=REGISTRY)
TRAIN_SECONDS = Histogram("shoprec_train_seconds", "Model training time", ["platform", "model"], buckets=SECONDS,
                          registry=REGISTRY)
RETRAIN_DECISIONS = Counter("shoprec_retrain_decisions", "Retraining gate decisions (promoted, kept, experiment)",
                            ["platform", "decision"], registry=REGISTRY)
MODEL_LOADS = Counter("shoprec_model_loads", "Model loads by a server (outcome: loaded, failed)",
                      ["platform", "outcome"], registry=REGISTRY)
REFUSED_ANONYMOUS_BODIES = Counter(
    "shoprec_refused_anonymous_bodies", "Requests with a body and no X-API-Key to a keyed route, answered 401 by the "
    "connection before the app (shoprec.api.workers: not in the per-route request metrics)", ["reason"],
    registry=REGISTRY)
MODEL_LOAD_SECONDS = Histogram("shoprec_model_load_seconds", "Time to load a model for serving", ["platform"],
                               buckets=LOAD_SECONDS, registry=REGISTRY)
