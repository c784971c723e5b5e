"""Offline evaluation: metrics (pure functions), protocols, reports, paired comparison and plots."""

from shoprec.evaluation.protocols import PROTOCOLS, EvalConfig, EvalResult, FoldData, run_protocol

__all__ = ["PROTOCOLS", "EvalConfig", "EvalResult", "FoldData", "run_protocol"]
