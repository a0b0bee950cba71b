"""Bit-identical CPU training: the environment and runtime settings every zoo-training process uses.

The same TrainConfig and code give byte-identical weights and trajectories only if every
floating-point kernel runs the same instructions in the same order. On CPU that is decided by
the thread count, by ATen's vector-kernel level, by MKL's code path and by which convolution
library runs. Measured on torch 2.14.1 (MKL 2024.2, oneDNN 3.12, AMD EPYC Zen 3, AVX2, no
AVX-512), training one small model of each architecture (cnn, mlp, spec_cnn, m5, bow_mlp,
text_cnn) per setting and hashing init / final weights and the trajectory arrays (the full
table and the commands: docs/reproducibility.md):

- 2 threads instead of 1 changed the final weights of cnn, mlp, spec_cnn and m5 and the
  trajectories of all six;
- ``ATEN_CPU_CAPABILITY=default`` instead of ``avx2`` changed all six, *including the init*
  (the init draws go through ATen's vectorised ``uniform_``, compiled once per level; a bare
  ``uniform_`` call gave other bits too). This wheel also has ``avx512`` kernels, which an
  AVX-512 machine picks by default, so the level must be pinned;
- ``ONEDNN_MAX_CPU_ISA=SSE41`` or ``AVX`` changed cnn, spec_cnn, m5 and text_cnn (oneDNN runs
  every convolution). oneDNN promises identical bits only on identical hardware, and its
  convolution blocking is derived from the L1/L2 cache sizes, so oneDNN is turned off;
- with oneDNN off, 2-D convolutions of batch >= 16 go to NNPACK, whose tiling is also derived
  from the cache sizes; turning it off too changed cnn, spec_cnn, text_cnn and m5's
  trajectory (ATen's im2col + GEMM path runs instead);
- ``MKL_CBWR=COMPATIBLE`` changed all six (every linear layer, the im2col GEMMs and the
  trajectory projection are MKL sgemm). ``MKL_CBWR=AVX2`` / ``AVX2,STRICT`` / ``SSE4_2`` are
  refused on this AMD CPU (``mkl_cbwr_get`` reports AUTO): MKL documents branches other than
  AUTO and COMPATIBLE as available on Intel CPUs only, and AUTO keeps MKL's ISA-based
  dispatch. COMPATIBLE (one SSE2 code path) is the only branch documented to exist on every
  x86-64 CPU;
- ``MKL_ENABLE_INSTRUCTIONS`` (SSE4_2, AVX) changed nothing on this CPU; MKL's FFT (torch.stft)
  gave the same bits under every MKL_CBWR value tried (``MKL_VERBOSE`` shows it running under
  ``CNR:COMPATIBLE``);
- under all the pins, a repeat, a capped oneDNN / MKL ISA, a process started with adversarial
  settings (``pin()`` overrides them) and two busy loops on both cores gave identical bytes;
  ``torch.set_num_threads(2)`` after ``pin()`` did not, so the thread count stays pinned.

So a training process starts with ``PINNED_ENV`` (``training_env()``) and calls ``pin()`` before
anything imports torch. ``fingerprint()`` is what decided the bits, for the zoo's metadata.
The guarantee covers x86-64 CPUs with AVX2 and FMA (Intel Haswell and later, AMD Zen and
later) with this torch build; it was tested here on one AMD CPU only (see the doc for limits).
Speed cost (CPU seconds per mini-spec model, pinned / unpinned): cnn 1.87x (oneDNN off), spec_cnn
1.27x, bow_mlp 1.21x (MKL's SSE2 GEMM); details in docs/reproducibility.md.

Importing this module does not import torch.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

PINNED_ENV: dict[str, str] = {
    # One intra-op thread: ATen splits reductions and convolution backward by thread count
    # (measured: 2 threads changed cnn, mlp, spec_cnn and m5 weights and every trajectory).
    "OMP_NUM_THREADS": "1",
    # MKL's own thread count: CNR is reproducible only for a fixed count (MKL docs).
    "MKL_NUM_THREADS": "1",
    # MKL's reproducibility conditions: no run-time adjustment of the thread count.
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    # MKL's one code path that exists on Intel and AMD alike (SSE2, no rcpps/rsqrtps); AVX2 etc.
    # fall back to AUTO (ISA dispatch) on non-Intel CPUs. Measured: changes every architecture.
    "MKL_CBWR": "COMPATIBLE",
    # ATen's vector kernels at the AVX2 level on every machine (an AVX-512 CPU would pick
    # avx512 ones). Measured: default vs avx2 changes every architecture, init included.
    "ATEN_CPU_CAPABILITY": "avx2",
    # numpy's bundled OpenBLAS: one thread, so that 2 workers do not oversubscribe (speed only).
    "OPENBLAS_NUM_THREADS": "1",
}

# The ATen kernel level PINNED_ENV asks for, as torch.backends.cpu.get_cpu_capability() names it.
CPU_CAPABILITY = "AVX2"
# mkl_cbwr_get(MKL_CBWR_BRANCH) values (oneMKL "Named Constants for CNR Control").
_MKL_CBWR_BRANCH = 1
_MKL_BRANCHES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1",
                 8: "SSE4_2", 9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1",
                 14: "AVX512_E1"}
_MKL_BRANCH = "COMPATIBLE"


def training_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: ``os.environ``) with ``PINNED_ENV`` applied over it.

    Start every training process with it (``subprocess.Popen(..., env=training_env())``): the
    settings are read when torch and MKL load, so they must be in place before torch is imported.
    """
    env = dict(os.environ if base is None else base)
    env.update(PINNED_ENV)
    return env


def pin() -> None:
    """Pin this process's numerics; call it first thing in a training process.

    If torch is not imported yet, applies ``PINNED_ENV`` to ``os.environ`` (it is read when
    torch and MKL load) and imports torch. If torch is already imported, checks what cannot be
    changed any more (ATen's kernel level, MKL's CNR branch) and raises RuntimeError naming what
    differs: such a process must be started with ``env=training_env()``. Then sets one thread,
    one inter-op thread (when still possible), oneDNN and NNPACK off, deterministic algorithms.
    Raises RuntimeError on an x86-64 CPU without AVX2/FMA (ATen would not fall back by itself).
    """
    _require_avx2()
    if "torch" not in sys.modules:
        os.environ.update(PINNED_ENV)
        import torch  # noqa: F401  (loads MKL and ATen with the pinned environment)

        when = "although PINNED_ENV was set before importing torch"
    else:
        when = "torch was imported before pin() with other settings"
    problems = _fixed_at_load_problems()
    if problems:
        raise RuntimeError(
            f"model_zoo.determinism.pin(): {'; '.join(problems)} ({when}); start the training process "
            f"with env=model_zoo.determinism.training_env() and call pin() before importing torch"
        )
    _apply_runtime_settings()


def fingerprint() -> dict[str, str]:
    """What decided the bits of models trained in this process (for the zoo's metadata).

    Call it after ``pin()``; imports torch.
    """
    import torch

    return {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": _mkl_version() or "absent",
        "mkl_cbwr": _mkl_branch() or "unknown",
        "mkldnn": str(bool(torch.backends.mkldnn.enabled)).lower(),
        "nnpack": str(bool(torch._C._get_nnpack_enabled())).lower(),
        "threads": str(torch.get_num_threads()),
        "deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()).lower(),
        "pinned_env": ";".join(f"{k}={v}" for k, v in sorted(PINNED_ENV.items())),
    }


# ----------------------------------------------------------------------------- internals


def _is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def _require_avx2() -> None:
    if not _is_x86_64():
        return
    flags = _cpu_flags()
    if flags is not None and not {"avx2", "fma"} <= flags:
        raise RuntimeError(
            "model_zoo.determinism.pin(): this x86-64 CPU lacks AVX2/FMA; the pinned zoo numerics "
            "(ATEN_CPU_CAPABILITY=avx2) need a CPU with both"
        )


def _fixed_at_load_problems() -> list[str]:
    """What differs from the pins among the settings fixed when torch / MKL loaded."""
    import torch

    problems = []
    if _is_x86_64():
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != CPU_CAPABILITY:
            problems.append(f"ATen CPU capability is {capability}, pinned {CPU_CAPABILITY}")
    if torch.backends.mkl.is_available():
        branch = _mkl_branch()
        if branch is not None and branch != _MKL_BRANCH:
            problems.append(f"MKL CNR branch is {branch}, pinned {_MKL_BRANCH}")
    return problems


def _apply_runtime_settings() -> None:
    import torch

    torch.set_num_threads(1)  # also sets MKL's thread count and turns MKL's dynamic threads off
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # only settable before the first inter-op work; the zoo's training uses none
    torch.backends.mkldnn.enabled = False  # oneDNN: blocking from the cache sizes (see above)
    torch.backends.nnpack.set_flags(False)  # NNPACK: tiling from the cache sizes
    torch.use_deterministic_algorithms(True)


def _libtorch_cpu():
    """ctypes handle of the already-loaded libtorch_cpu (MKL is linked into it), or None."""
    import ctypes

    import torch

    names = {"linux": "libtorch_cpu.so", "darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}
    path = Path(torch.__file__).parent / "lib" / names.get(sys.platform, "libtorch_cpu.so")
    try:
        return ctypes.CDLL(str(path))
    except OSError:
        return None


def _mkl_branch() -> str | None:
    """MKL's CNR branch in use (``mkl_cbwr_get(MKL_CBWR_BRANCH)``), or None if not queryable."""
    import ctypes

    lib = _libtorch_cpu()
    for name in ("mkl_cbwr_get", "mkl_serv_cbwr_get", "MKL_CBWR_GET"):
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
            value = int(fn(_MKL_CBWR_BRANCH))
            return _MKL_BRANCHES.get(value, str(value))
    return None


def _mkl_version() -> str | None:
    import ctypes

    import torch

    if not torch.backends.mkl.is_available():
        return None
    lib = _libtorch_cpu()
    fn = getattr(lib, "MKL_Get_Version_String", None) if lib is not None else None
    if fn is None:
        return "unknown"
    buf = ctypes.create_string_buffer(256)
    fn(buf, len(buf))
    return buf.value.decode(errors="replace").strip()
