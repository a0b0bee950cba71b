"""A training worker whose trainer fails for one config (tests/test_build.py)."""

from __future__ import annotations

from typing import Any


def init() -> dict[str, Any]:
    import model_zoo.trainer as trainer
    from model_zoo.build import worker_init

    context = worker_init()
    real = trainer.train_model

    def flaky(cfg, *args, **kwargs):
        if cfg.lr == 0.1 and cfg.train_size == 60:
            raise FloatingPointError("loss is NaN")
        return real(cfg, *args, **kwargs)

    trainer.train_model = flaky
    return context
