"""Recording the post-convergence window: exact iterates, or a sparse sketch plus a coordinate sample.

A model's window holds K iterates w_1..w_K (flattened parameters after each of the K steps that
follow convergence), stored as offsets from the window's first iterate, ``delta_t = w_t - w_1``,
computed in float64 from the float32 parameters, so nearby iterates are not lost to
cancellation (the known trap: distances between nearby iterates computed from uncentred values
in TF32 are off by 25-70x). When the model has more than ``exact_max_params`` parameters, two
reductions of each offset are stored (docs/trajectory.md has the measurements behind them):

- ``iterates``: a fixed **sparse sign sketch** R^P -> R^D (Kane & Nelson 2014, "Sparser
  Johnson-Lindenstrauss transforms", block construction): each parameter goes to ``nnz``
  output coordinates, one per block of D / nnz, with a random sign, scaled by 1/sqrt(nnz).
  It keeps pairwise distances as well as a dense Gaussian map does (max error 6-8%, median
  0.3-3% at D = 1024 on real windows and on an isotropic random walk) at a cost of
  ``nnz * P`` per step instead of ``D * P``, so distance-based measures (PH dimension)
  run on it.
- ``coordinates``: the exact offsets of ``COORDINATES`` parameters drawn at random (the same for
  every model of a size and seed). Coordinate-wise statistics (the tail index of increments)
  must use these: any map that sums parameters of different scales pushes the Mohammadi
  estimate towards 2 (measured: exact 1.52 / 1.14, sketched or Gaussian-projected 2.1-2.3).

Both maps are pure functions of ``(n_params, dim, seed)`` and bit-reproducible (numpy/scipy,
float64, a fixed summation order).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sparse
import torch

from model_zoo.trajectory import TrajectoryWindow

SKETCH_NNZ = 4
"""Output coordinates per parameter in the sparse sketch (a multiple of... any divisor of D)."""
COORDINATES = 512
"""Parameters whose exact offsets are kept when the window is sketched."""


class Projector:
    """A fixed sparse sign sketch R^P -> R^D plus a fixed sample of coordinates (see the module doc).

    ``project(x) = x @ R`` with ``E ||project(x)||^2 = ||x||^2``; ``sample(x) = x[:, index]``.
    """

    def __init__(self, n_params: int, dim: int, seed: int, *, nnz: int = SKETCH_NNZ,
                 n_coordinates: int = COORDINATES):
        if n_params < 1 or dim < 1:
            raise ValueError(f"Projector needs n_params >= 1 and dim >= 1, got n_params={n_params}, dim={dim}")
        if nnz < 1 or dim % nnz:
            raise ValueError(f"Projector: nnz={nnz} must divide dim={dim}")
        self.n_params, self.dim, self.seed, self.nnz = int(n_params), int(dim), int(seed), int(nnz)
        self.n_coordinates = min(int(n_coordinates), self.n_params)

    @cached_property
    def matrix_t(self) -> sparse.csr_matrix:
        """R^T as a [D, P] CSR matrix (float64), drawn from PCG64 seeded by (seed, P, D, nnz)."""
        rng = np.random.default_rng([self.seed, self.n_params, self.dim, self.nnz])
        block = self.dim // self.nnz
        cols = rng.integers(0, block, size=(self.n_params, self.nnz)) + block * np.arange(self.nnz)
        signs = rng.integers(0, 2, size=(self.n_params, self.nnz)) * 2.0 - 1.0
        rows = np.repeat(np.arange(self.n_params), self.nnz)
        r = sparse.csr_matrix((signs.ravel() / np.sqrt(self.nnz), (rows, cols.ravel())), shape=(self.n_params, self.dim))
        return r.T.tocsr()

    @cached_property
    def index(self) -> np.ndarray:
        """The sorted indices of the sampled coordinates."""
        rng = np.random.default_rng([self.seed, self.n_params, 0xC00D])
        return np.sort(rng.choice(self.n_params, size=self.n_coordinates, replace=False)).astype(np.int64)

    def project(self, deltas: np.ndarray | torch.Tensor) -> np.ndarray:
        """``deltas [K, P] -> [K, D]`` in float64 (a numpy array; torch tensors are moved to the CPU)."""
        x = _as_f64(deltas)
        if x.ndim != 2 or x.shape[1] != self.n_params:
            raise ValueError(f"Projector.project expects [K, {self.n_params}], got {tuple(x.shape)}")
        return np.ascontiguousarray((self.matrix_t @ x.T).T)

    def sample(self, deltas: np.ndarray | torch.Tensor) -> np.ndarray:
        """``deltas [K, P] -> [K, n_coordinates]``: the exact values of the sampled coordinates."""
        x = _as_f64(deltas)
        return np.ascontiguousarray(x[:, self.index])


def _as_f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


class WindowRecorder:
    """Collects a window step by step (see ``TrajectoryWindow``), reducing each iterate as it comes.

    Each offset is computed in float64 and, for a large model, sketched and sampled at once
    (``nnz * P`` work per step, no K x P buffer), so memory is O(K * (D + C)).
    """

    def __init__(self, n_params: int, steps: int, *, projection_dim: int, exact_max_params: int,
                 projection_seed: int = 0):
        if steps < 1:
            raise ValueError(f"window_steps must be >= 1, got {steps}")
        self.n_params, self.steps = int(n_params), int(steps)
        self.projected = self.n_params > exact_max_params
        self.projector = Projector(self.n_params, projection_dim, projection_seed) if self.projected else None
        width = self.projector.dim if self.projector is not None else self.n_params
        self._iterates = np.empty((self.steps, width), dtype=np.float32)
        self._coordinates = (np.empty((self.steps, self.projector.n_coordinates), dtype=np.float32)
                             if self.projector is not None else None)
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
        t = len(self.losses)
        if t >= self.steps:
            raise RuntimeError(f"WindowRecorder: already recorded all {self.steps} steps")
        w = flat_params.detach().to("cpu", torch.float64)
        if self._first is None:
            self._first = w.clone()
        self.norms.append(float(torch.linalg.vector_norm(w)))
        self.step_norms.append(float(torch.linalg.vector_norm(w - self._prev)) if self._prev is not None else 0.0)
        self._prev = w
        self.losses.append(float(loss))
        delta = (w - self._first).numpy()[None, :]
        if self.projector is None:
            self._iterates[t] = delta[0]
        else:
            self._iterates[t] = self.projector.project(delta)[0]
            self._coordinates[t] = self.projector.sample(delta)[0]

    def finish(self) -> TrajectoryWindow:
        """The recorded window; raises if fewer than ``steps`` iterates were recorded."""
        if len(self.losses) != self.steps:
            raise RuntimeError(f"WindowRecorder: recorded {len(self.losses)} of {self.steps} steps")
        return TrajectoryWindow(
            iterates=self._iterates,
            losses=np.asarray(self.losses, dtype=np.float32),
            norms=np.asarray(self.norms, dtype=np.float32),
            step_norms=np.asarray(self.step_norms, dtype=np.float32),
            projected=self.projected,
            n_params=self.n_params,
            projection_dim=self.projector.dim if self.projector is not None else None,
            projection_seed=self.projector.seed if self.projector is not None else None,
            coordinates=self._coordinates,
            coordinate_index=self.projector.index if self.projector is not None else None,
        )
