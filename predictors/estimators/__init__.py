"""Pure numerical estimators behind the predictors (no zoo, no Subject).

Modules, named by the mathematics they implement (a predictor family module never shares a
stem with one): alpha_stable (Mohammadi tail index), powerlaw (ESD power-law fits),
persistent_homology (PH0 dimension), hessian (Lanczos, Hutchinson), perturbation (worst-case
and PAC-Bayes sharpness), gradient_noise (noise scale), emc (effective model complexity).
Import from the submodules (e.g. ``from predictors.estimators.persistent_homology import
ph_dimension``); this package does not import torch-dependent modules eagerly.
"""

__all__ = ["alpha_stable", "powerlaw", "persistent_homology", "hessian", "perturbation", "gradient_noise", "emc"]
