"""What a training job trains with: the deployment's training time cap, and its caps on the epochs and the context
"auto" resolves to, are the defaults of models that take them."""

from __future__ import annotations

from shoprec.worker.handlers import with_deployment_limits


def test_a_job_gets_the_deployment_time_limit_unless_it_sets_a_shorter_one() -> None:
    limits = {"max_seconds": 600.0}
    assert with_deployment_limits("transformer", {"epochs": 3}, limits) == {"epochs": 3, "max_seconds": 600.0}
    assert with_deployment_limits("transformer", {"max_seconds": 5}, limits) == {"max_seconds": 5}
    assert with_deployment_limits("ease", {"l2": 100.0}, limits) == {"l2": 100.0}  # no time limit to give
    assert with_deployment_limits("transformer", {}, {}) == {}


def test_a_job_gets_the_deployment_caps_on_auto_sizes() -> None:
    limits = {"epochs": 30.0, "max_len": 64.0, "n_blocks": 4.0}
    assert with_deployment_limits("transformer", {}, limits) == {"max_epochs": 30, "max_context": 64}
    assert with_deployment_limits("transformer", {"max_epochs": 10}, limits) == {"max_epochs": 10, "max_context": 64}
    assert with_deployment_limits("ease", {}, limits) == {}
