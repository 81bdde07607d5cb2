"""Silence the import-time noise of the Azure ML SDK, and nothing else.

azure-ai-ml builds its marshmallow schemas at import time with field options marshmallow
has deprecated, and logs a line the first time an experimental class is constructed; tqdm,
imported by MLflow, warns that ipywidgets is missing. None of these says anything about the
learner's code, so labs should not show them. Warnings raised by
any other module, and every other category, still show.
"""
from __future__ import annotations

import logging
import warnings

_SDK_MODULES = r"(azure\.ai\.ml|marshmallow)(\..*)?"


def install() -> None:
    from marshmallow.warnings import Marshmallow4Warning

    warnings.filterwarnings("ignore", category=Marshmallow4Warning, module=_SDK_MODULES)
    # tqdm (imported by MLflow) asks for ipywidgets to draw notebook progress bars; the labs
    # draw none, so the hint says nothing about the learner's code.
    warnings.filterwarnings("ignore", message="IProgress not found", module=r"tqdm(\..*)?")
    # "Class X: This is an experimental class, and may change at any time." is logged, not warned.
    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
