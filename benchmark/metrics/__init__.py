"""Scoring functions of the leaderboard: pure functions of one task's model frame.

Input: a pandas DataFrame of one task's models with columns ``model_id``, ``config_id`` (shared
by the seeds of a config), ``seed``, ``hp.<axis>`` (grid values as the spec wrote them, strings,
compared exactly), ``score`` (higher = larger predicted gap) and targets ``gap``,
``test_error`` (optionally ``shift_error``). Functions take the frame, the axis names (without
``hp.``) and the target column.

=================================  =========  ==============================================
function                           unit       paper
=================================  =========  ==============================================
``kendall_tau``                    models     Kendall 1945 (tau-b, = scipy.stats.kendalltau)
``granulated_psi``                 configs    Jiang et al. 2020, "Fantastic ..." (Psi)
``conditional_mutual_information`` configs    PGDL 2020 scoring program (CMI x100)
``cmi_signed``                     configs    CMI x sign of the bin-averaged agreement
``robust_sign_error``              models     Dziugaite et al. 2020 (single-axis environments)
``selection_regret``               configs    test error of the lowest-scored config - best
``bootstrap_ci``                   configs    percentile bootstrap resampling configs
``score_task``                     all        every metric with its interval, tidy rows
=================================  =========  ==============================================

"configs" metrics average the seeds of each config first (:func:`average_over_seeds`).
"""

from benchmark.metrics._frame import average_over_seeds
from benchmark.metrics.bootstrap import bootstrap_ci, percentile_interval, resample_configs
from benchmark.metrics.cmi import (
    CmiResult,
    cmi_details,
    cmi_signed,
    conditional_mutual_information,
)
from benchmark.metrics.rank import PsiResult, granulated_psi, kendall_tau
from benchmark.metrics.selection import selection_regret
from benchmark.metrics.sign_error import SignErrorResult, robust_sign_error
from benchmark.metrics.task import score_task
from benchmark.schema import SCORE_METRICS

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
    "kendall_tau",
    "percentile_interval",
    "resample_configs",
    "robust_sign_error",
    "score_task",
    "selection_regret",
]
