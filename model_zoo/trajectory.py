"""A recorded post-convergence window and the pure functions that describe it (torch-free).

A model's window holds K iterates w_1..w_K (flattened parameters after each of the K steps that
follow convergence), stored as offsets from the window's first iterate, ``delta_t = w_t - w_1``,
computed in float64 from the float32 parameters, so nearby iterates are not lost to cancellation
(the known trap: distances between nearby iterates computed from uncentred values in TF32 are
off by 25-70x). Large models' offsets are randomly projected (``model_zoo.projection``).
``drift_share`` is the stationarity diagnostic stored with every window; ``distortion``
measures what a projection does to pairwise distances (docs/trajectory.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TrajectoryWindow:
    """The recorded post-convergence window of one model.

    iterates: float32 ``[K, D]`` offsets from the window's first iterate (row 0 is all zeros);
    exact (D = n_params) when ``projected`` is False, else a sparse sketch that keeps pairwise
    distances (model_zoo.projection). coordinates: float32 ``[K, C]`` exact offsets of the
    parameters ``coordinate_index`` (sketched windows only; see ``exact_coordinates``). losses: minibatch training loss of each
    step ``[K]``. norms: ``||w_t||`` and step_norms: ``||w_t - w_{t-1}||`` in full dimension
    (float64 computations, stored float32), where w_0 is the converged point before the window.
    probe_losses: float32 ``[K, m]`` per-example training losses of each iterate on a fixed
    probe batch of m training examples (Dupuis et al. 2023's data-dependent distance needs
    them; projected iterates cannot be turned back into weights), or None.
    """

    iterates: np.ndarray
    losses: np.ndarray
    norms: np.ndarray
    step_norms: np.ndarray
    projected: bool
    n_params: int
    projection_dim: int | None = None
    projection_seed: int | None = None
    probe_losses: np.ndarray | None = None
    coordinates: np.ndarray | None = None
    coordinate_index: np.ndarray | None = None

    @property
    def exact_coordinates(self) -> np.ndarray:
        """Exact offsets of parameters ``[K, C]``: all of them (``iterates``) when not projected,
        else the sampled ``coordinates`` (what coordinate-wise statistics such as a tail index need).
        """
        if not self.projected:
            return self.iterates
        if self.coordinates is None:
            raise ValueError("this sketched window has no exact coordinate sample (a zoo built before format 3)")
        return self.coordinates

    @property
    def drift_share(self) -> float:
        """The window's stationarity diagnostic (see :func:`drift_share`)."""
        return drift_share(self.iterates)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, as stored in ``trajectory.safetensors``."""
        out = {"iterates": self.iterates, "losses": self.losses, "norms": self.norms, "step_norms": self.step_norms}
        if self.probe_losses is not None:
            out["probe_losses"] = self.probe_losses
        if self.coordinates is not None:
            out["coordinates"] = self.coordinates
            out["coordinate_index"] = self.coordinate_index
        return out


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix ``[K, K]`` of the rows of ``x``, in float64 after centring.

    d_ij^2 = |c_i|^2 + |c_j|^2 - 2 c_i.c_j with c = x - mean(x); centring first (and float64)
    keeps the Gram trick accurate for nearby points, whose uncentred norms dwarf their distance.
    """
    c = np.asarray(x, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"pairwise_distances expects a 2-D array [K, D], got shape {c.shape}")
    c = c - c.mean(axis=0, keepdims=True)
    sq = np.einsum("ij,ij->i", c, c)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (c @ c.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def drift_share(iterates: np.ndarray) -> float:
    """Stationarity diagnostic of a window: the share of its spread explained by a straight line.

    With X the centred iterates ``[K, D]`` and t the centred step index, the least-squares
    linear trend is t b^T with b = X^T t / (t^T t); the share is ||t b^T||^2 / ||X||^2 in [0, 1].
    About 0 for a stationary cloud (i.i.d. iterates: 1/K on average), about 0.5 for a random walk
    and 1 for a straight drift. Trajectory measures (tail index of increments, PH dimension)
    assume a stationary process; a share near 1 means they measure the drift. Linear maps
    preserve the trend, so it is computed on projected iterates as on exact ones.
    """
    x = np.asarray(iterates, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"drift_share needs iterates [K >= 3, D], got shape {x.shape}")
    x = x - x.mean(axis=0, keepdims=True)
    total = float(np.sum(x * x))
    if total == 0.0:
        return 0.0
    t = np.arange(x.shape[0], dtype=np.float64)
    t -= t.mean()
    b = (t @ x) / float(t @ t)
    return float(min(1.0, (t @ t) * float(b @ b) / total))


def distortion(exact: np.ndarray, projected: np.ndarray) -> dict[str, float]:
    """Relative error of pairwise distances after projection.

    For every pair i < j with exact distance d_ij > 0: e_ij = |d'_ij - d_ij| / d_ij, where d' are
    the distances of ``projected`` (rows matched to ``exact``). Returns max, median and mean e,
    and the number of pairs. JL: for D >= 8 ln(n) / eps^2 all e_ij <= eps with probability >= 1/2.
    """
    exact, projected = np.asarray(exact), np.asarray(projected)
    if exact.ndim != 2 or projected.ndim != 2 or exact.shape[0] != projected.shape[0]:
        raise ValueError(
            f"distortion needs two 2-D arrays with the same number of rows, got {exact.shape} and {projected.shape}"
        )
    d = pairwise_distances(exact)
    dp = pairwise_distances(projected)
    iu = np.triu_indices(d.shape[0], k=1)
    d, dp = d[iu], dp[iu]
    keep = d > 0
    if not keep.any():
        raise ValueError("distortion: all exact pairwise distances are zero (identical iterates)")
    rel = np.abs(dp[keep] - d[keep]) / d[keep]
    return {
        "max_rel_error": float(rel.max()),
        "median_rel_error": float(np.median(rel)),
        "mean_rel_error": float(rel.mean()),
        "n_pairs": int(keep.sum()),
    }


