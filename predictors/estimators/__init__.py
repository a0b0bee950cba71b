"""Pure numerical estimators behind the predictors (no zoo, no Subject).

Modules: tail_index, powerlaw, ph_dim, hessian, sharpness, noise_scale, emc. Import from the
submodules (e.g. ``from predictors.estimators.ph_dim import ph_dimension``); this package
does not import torch-dependent modules eagerly.
"""

__all__ = ["tail_index", "powerlaw", "ph_dim", "hessian", "sharpness", "noise_scale", "emc"]
