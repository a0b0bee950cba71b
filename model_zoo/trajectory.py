"""Recording the post-convergence window: exact or randomly projected iterates, and their distortion.

A model's window holds K iterates w_1..w_K (flattened parameters after each of the K steps that
follow convergence). They are stored as offsets from the window's first iterate,
``delta_t = w_t - w_1``, computed in float64 from the float32 parameters, so nearby iterates are
not lost to cancellation (the known trap: distances between nearby iterates computed from
uncentred values in TF32 are off by 25-70x). When the model has more than ``EXACT_MAX_PARAMS``
parameters, the offsets are mapped by a fixed Gaussian random projection
``R in R^{P x D}, R_ij ~ N(0, 1/D)`` (Johnson-Lindenstrauss; Dasgupta & Gupta 2003), which keeps
pairwise distances up to a small relative error and, being linear, keeps alpha-stable increments
alpha-stable with the same index (Simsekli et al. 2019), so tail-index and PH-dimension predictors
(Birdal et al. 2021) can run on it. Defaults are chosen by the measurement in docs/trajectory.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Chosen from the measurement in docs/trajectory.md: on real post-convergence windows (K = 200)
# D = 1024 keeps every pairwise distance within 7.2% (median 2%), costs 0.8 s per 55k-parameter
# model to project and 0.8 MB per model on disk (200 models: 160 MB).
DEFAULT_WINDOW = 200
DEFAULT_DIM = 1024
# Exact iterates are no larger than projected ones up to P = D, and have zero distortion.
EXACT_MAX_PARAMS = DEFAULT_DIM

# Rows of R generated per chunk: fixed (not tied to memory) so that (P, D, seed) fixes the map.
PROJECTION_CHUNK = 8192
# Drawing R costs ~15 ns per entry (0.8 s for P = 55k, D = 1024) and zoo models of one
# architecture share P, so the last matrix up to this size is kept for the next model.
DENSE_CACHE_BYTES = 256 * 2**20
_dense_cache: dict[tuple[int, int, int], torch.Tensor] = {}


@dataclass
class TrajectoryWindow:
    """The recorded post-convergence window of one model.

    iterates: float32 ``[K, D]`` offsets from the window's first iterate (row 0 is all zeros);
    exact (D = n_params) when ``projected`` is False. losses: minibatch training loss of each
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

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, as stored in ``trajectory.safetensors``."""
        out = {"iterates": self.iterates, "losses": self.losses, "norms": self.norms, "step_norms": self.step_norms}
        if self.probe_losses is not None:
            out["probe_losses"] = self.probe_losses
        return out


class Projector:
    """A fixed Gaussian random projection R^P -> R^D with entries N(0, 1/D).

    The P x D matrix is never held at once: rows ``[c*C, (c+1)*C)`` (C = ``PROJECTION_CHUNK``)
    are drawn from numpy's PCG64 seeded by ``(seed, P, D, c)``, so memory is O(C * D) for any P
    and the same ``(n_params, dim, seed)`` always gives the same map. ``project(x) = x @ R``, so
    ``E ||project(x)||^2 = ||x||^2``.
    """

    def __init__(self, n_params: int, dim: int, seed: int):
        if n_params < 1 or dim < 1:
            raise ValueError(f"Projector needs n_params >= 1 and dim >= 1, got n_params={n_params}, dim={dim}")
        self.n_params, self.dim, self.seed = int(n_params), int(dim), int(seed)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_params // PROJECTION_CHUNK)

    def chunk(self, index: int) -> torch.Tensor:
        """Rows ``[index*C, min((index+1)*C, P))`` of R as a float32 CPU tensor."""
        start = index * PROJECTION_CHUNK
        stop = min(start + PROJECTION_CHUNK, self.n_params)
        if not 0 <= start < self.n_params:
            raise IndexError(f"Projector chunk {index} out of range (n_chunks={self.n_chunks})")
        rng = np.random.default_rng([self.seed, self.n_params, self.dim, index])
        rows = rng.standard_normal((stop - start, self.dim), dtype=np.float32)
        rows *= np.float32(1.0 / np.sqrt(self.dim))
        return torch.from_numpy(rows)

    def _chunks(self):
        """R's row chunks in order; the whole matrix is cached when under ``DENSE_CACHE_BYTES``."""
        key = (self.seed, self.n_params, self.dim)
        if 4 * self.n_params * self.dim > DENSE_CACHE_BYTES:
            yield from (self.chunk(c) for c in range(self.n_chunks))
            return
        if key not in _dense_cache:
            _dense_cache.clear()
            _dense_cache[key] = torch.cat([self.chunk(c) for c in range(self.n_chunks)])
        dense = _dense_cache[key]
        yield from (dense[c * PROJECTION_CHUNK : (c + 1) * PROJECTION_CHUNK] for c in range(self.n_chunks))

    def project(self, deltas: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``deltas [K, P] -> [K, D]`` (on deltas' device), accumulating chunk products in ``dtype``.

        The sum runs chunk by chunk in a fixed order whether or not R is cached, so the result
        is bitwise reproducible.
        """
        if deltas.ndim != 2 or deltas.shape[1] != self.n_params:
            raise ValueError(f"Projector.project expects [K, {self.n_params}], got {tuple(deltas.shape)}")
        out = torch.zeros(deltas.shape[0], self.dim, dtype=dtype, device=deltas.device)
        for c, rows in enumerate(self._chunks()):
            start = c * PROJECTION_CHUNK
            block = deltas[:, start : start + PROJECTION_CHUNK].to(dtype)
            out += block @ rows.to(device=deltas.device, dtype=dtype)
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


class WindowRecorder:
    """Collects a window step by step (see ``TrajectoryWindow``) and projects it at the end.

    Offsets are buffered as float32 on the CPU and projected in blocks of at most
    ``max_buffer_bytes``, so the projection matrix is generated once per block (once per window
    for the zoo's sizes) instead of once per step.
    """

    def __init__(
        self,
        n_params: int,
        steps: int,
        *,
        projection_dim: int = DEFAULT_DIM,
        exact_max_params: int = EXACT_MAX_PARAMS,
        projection_seed: int = 0,
        max_buffer_bytes: int = 512 * 2**20,
    ):
        if steps < 1:
            raise ValueError(f"window_steps must be >= 1, got {steps}")
        self.n_params, self.steps = int(n_params), int(steps)
        self.projected = self.n_params > exact_max_params
        self.projector = Projector(self.n_params, projection_dim, projection_seed) if self.projected else None
        self.block_rows = self.steps if not self.projected else max(1, min(self.steps, max_buffer_bytes // (4 * self.n_params)))
        self._buffer = torch.empty(self.block_rows, self.n_params, dtype=torch.float32)
        self._filled = 0
        self._blocks: list[np.ndarray] = []
        self._first: torch.Tensor | None = None
        self._prev: torch.Tensor | None = None
        self.losses: list[float] = []
        self.norms: list[float] = []
        self.step_norms: list[float] = []

    def start(self, flat_params: torch.Tensor) -> None:
        """Set w_0, the converged point before the window's first step (for the first step norm)."""
        self._prev = flat_params.detach().to("cpu", torch.float64).clone()

    def record(self, flat_params: torch.Tensor, loss: float) -> None:
        """Record iterate w_t (flattened float32 parameters) and the minibatch loss of its step."""
        if len(self.losses) >= self.steps:
            raise RuntimeError(f"WindowRecorder: already recorded all {self.steps} steps")
        w = flat_params.detach().to("cpu", torch.float64)
        if self._first is None:
            self._first = w.clone()
        self.norms.append(float(torch.linalg.vector_norm(w)))
        self.step_norms.append(float(torch.linalg.vector_norm(w - self._prev)) if self._prev is not None else 0.0)
        self._prev = w
        self.losses.append(float(loss))
        self._buffer[self._filled] = (w - self._first).to(torch.float32)
        self._filled += 1
        if self._filled == self.block_rows:
            self._flush()

    def _flush(self) -> None:
        if self._filled == 0:
            return
        block = self._buffer[: self._filled]
        if self.projector is not None:
            block = self.projector.project(block, dtype=torch.float32)
        self._blocks.append(block.numpy().astype(np.float32, copy=True))
        self._filled = 0

    def finish(self) -> TrajectoryWindow:
        """The recorded window; raises if fewer than ``steps`` iterates were recorded."""
        if len(self.losses) != self.steps:
            raise RuntimeError(f"WindowRecorder: recorded {len(self.losses)} of {self.steps} steps")
        self._flush()
        self._buffer = torch.empty(0)
        return TrajectoryWindow(
            iterates=np.concatenate(self._blocks, axis=0),
            losses=np.asarray(self.losses, dtype=np.float32),
            norms=np.asarray(self.norms, dtype=np.float32),
            step_norms=np.asarray(self.step_norms, dtype=np.float32),
            projected=self.projected,
            n_params=self.n_params,
            projection_dim=self.projector.dim if self.projector is not None else None,
            projection_seed=self.projector.seed if self.projector is not None else None,
        )
