"""Evaluation runs: datasets, metrics (IR, answers, RAGAS-style, poisoning, cost), runner and reports.

Every metric value is a ``MetricResult`` with a status, so a failed judgement is counted and
reported (``n_valid / n``) instead of silently becoming a zero or a NaN in an average.
"""

from ragpipe.evaluate.metric import Aggregate, MetricResult, aggregate

__all__ = ["Aggregate", "MetricResult", "aggregate"]
