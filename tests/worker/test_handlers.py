"""What a training job trains with: the deployment's training time cap is the default of models that take one."""

from __future__ import annotations

from shoprec.worker.handlers import with_time_limit


def test_a_job_gets_the_deployment_time_limit_unless_it_sets_a_shorter_one() -> None:
    limits = {"max_seconds": 600.0}
    assert with_time_limit("transformer", {"epochs": 3}, limits) == {"epochs": 3, "max_seconds": 600.0}
    assert with_time_limit("transformer", {"max_seconds": 5}, limits) == {"max_seconds": 5}
    assert with_time_limit("ease", {"l2": 100.0}, limits) == {"l2": 100.0}  # no time limit to give
    assert with_time_limit("transformer", {}, {}) == {}
