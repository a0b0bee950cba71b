"""Scoring functions of the leaderboard: pure functions of one task's model frame.

Input: a pandas DataFrame of one task's models with columns ``model_id``, ``config_id`` (shared
by the seeds of a config), ``seed``, ``hp.<axis>`` (grid values as the spec wrote them, strings,
compared exactly), ``score`` (higher = larger predicted gap) and targets ``gap``,
``test_error`` (optionally ``shift_error``). Functions take the frame, the axis names (without
``hp.``) and the target column. docs/metrics.md defines every number exactly.

=================================  =========  ==============================================
function                           unit       definition
=================================  =========  ==============================================
``kendall_tau``                    models     Kendall 1938; tau-b ties (Kendall 1945), = scipy
``granulated_psi``                 groups     Jiang et al. 2020 (Psi, eq. 2-3), undefined groups dropped
``conditional_mutual_information`` bins       PGDL 2020 scoring program (CMI x100), bias-corrected
``cmi_signed``                     bins       CMI x sign of the bin-averaged agreement
``robust_sign_error``              envs       Dziugaite et al. 2020 (Hoeffding weights, ESS filter)
``selection_regret``               configs    test error of the lowest-scored config - best
``bootstrap_ci``                   seeds      seeds redrawn within configs, re-centred percentiles
``score_task``                     all        every metric with its interval, tidy rows
=================================  =========  ==============================================

Config-level metrics average the seeds of each config first (:func:`average_over_seeds`).
"""

from benchmark.metrics._frame import average_over_seeds
from benchmark.metrics.bootstrap import bootstrap_ci, percentile_interval, recentre
from benchmark.metrics.catalog import SCORE_METRICS, score_keys
from benchmark.metrics.cmi import (
    CmiResult,
    cmi_details,
    cmi_signed,
    conditional_mutual_information,
)
from benchmark.metrics.rank import PsiResult, granulated_psi, kendall_tau
from benchmark.metrics.selection import selection_regret
from benchmark.metrics.sign_error import SignErrorResult, hoeffding_weight, robust_sign_error
from benchmark.metrics.task import score_task

__all__ = [
    "SCORE_METRICS",
    "CmiResult",
    "PsiResult",
    "SignErrorResult",
    "average_over_seeds",
    "bootstrap_ci",
    "cmi_details",
    "cmi_signed",
    "conditional_mutual_information",
    "granulated_psi",
    "hoeffding_weight",
    "kendall_tau",
    "percentile_interval",
    "recentre",
    "robust_sign_error",
    "score_keys",
    "score_task",
    "selection_regret",
]
