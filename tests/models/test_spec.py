import numpy as np
import pytest

from hwfit.core import InputSpecError
from hwfit.models import InputSpec, TensorSpec, parse_shape_overrides, synthetic_inputs

TEXT = InputSpec(
    (
        TensorSpec("input_ids", "int64", ("B", "S"), fill="token_ids", low=5, high=50),
        TensorSpec("attention_mask", "int64", ("B", "S"), fill="mask"),
    ),
    default_sizes={"S": 16},
)


def test_parse_shape_overrides_reads_names_and_ints():
    assert parse_shape_overrides(["input_ids=B,128", "x=1,3,S"]) == {"input_ids": ("B", 128), "x": (1, 3, "S")}


@pytest.mark.parametrize("text", ["input_ids", "=B,1", "x=B,-1", "x=B,1.5", "x="])
def test_malformed_shape_override_names_the_text(text):
    with pytest.raises(InputSpecError, match="--shape"):
        parse_shape_overrides([text])


def test_override_changes_sequence_length_and_rank_mismatch_is_rejected():
    spec = TEXT.with_overrides({"input_ids": ("B", 64), "attention_mask": ("B", 64)})
    assert spec.shapes(4) == {"input_ids": (4, 64), "attention_mask": (4, 64)}
    with pytest.raises(InputSpecError, match="rank 2"):
        TEXT.with_overrides({"input_ids": ("B",)})
    with pytest.raises(InputSpecError, match="unknown input"):
        TEXT.with_overrides({"pixels": ("B", 3)})


def test_synthetic_token_ids_stay_in_vocabulary_and_are_reproducible():
    first = synthetic_inputs(TEXT, 32, seed=3)
    again = synthetic_inputs(TEXT, 32, seed=3)
    ids = first["input_ids"]
    assert ids.shape == (32, 16) and ids.dtype == np.int64
    assert ids.min() >= 5 and ids.max() < 50
    assert (first["attention_mask"] == 1).all()
    assert np.array_equal(ids, again["input_ids"])


def test_validate_names_the_bad_tensor():
    good = synthetic_inputs(TEXT, 2)
    TEXT.validate(good)
    with pytest.raises(InputSpecError, match="input 'input_ids' has dtype int32"):
        TEXT.validate({**good, "input_ids": good["input_ids"].astype(np.int32)})
    with pytest.raises(InputSpecError, match="rank"):
        TEXT.validate({**good, "attention_mask": good["attention_mask"][0]})
    with pytest.raises(InputSpecError, match="S=8 .* S=16|must agree"):
        TEXT.validate({**good, "attention_mask": np.ones((2, 8), np.int64)})
    with pytest.raises(InputSpecError, match="missing input"):
        TEXT.validate({"input_ids": good["input_ids"]})


def test_dynamic_dim_without_size_says_how_to_give_one():
    spec = InputSpec((TensorSpec("x", "float32", ("B", "T")),))
    with pytest.raises(InputSpecError, match="--shape x=B,N"):
        spec.shapes(1)


def test_validate_names_unknown_and_missing_inputs_together():
    good = synthetic_inputs(TEXT, 2)
    with pytest.raises(InputSpecError) as caught:
        TEXT.validate({"input_id": good["input_ids"], "attention_mask": good["attention_mask"]})
    assert str(caught.value) == (
        "unknown input(s) ['input_id'] and missing input(s) ['input_ids']; "
        "the model's inputs are ['input_ids', 'attention_mask']"
    )


def test_the_servers_limits_are_asked_for_not_imposed_on_library_callers():
    """max_batch_size and finite are the server's: Runner.run (neither) takes a NaN or a large batch."""
    spec = InputSpec((TensorSpec("x", "float32", ("B", 2)),))
    big = {"x": np.zeros((9, 2), np.float32)}
    spec.validate(big)
    with pytest.raises(InputSpecError) as caught:
        spec.validate(big, max_batch_size=8)
    assert str(caught.value) == (
        "the inputs have batch size 9 (input 'x' has B=9); this model takes 1 to 8 per request "
        "(max_batch_size 8): split it"
    )
    with pytest.raises(InputSpecError, match="batch size 0 .* send at least one sample"):
        spec.validate({"x": np.zeros((0, 2), np.float32)}, max_batch_size=8)
    nan = {"x": np.array([[1.0, np.nan]], np.float32)}
    spec.validate(nan)
    with pytest.raises(InputSpecError, match=r"input 'x' holds 1 non-finite value\(s\) .* index \[0, 1\]"):
        spec.validate(nan, finite=True)
    spec.validate({"x": np.zeros((3, 2), np.float32)}, batch_size=3)
    with pytest.raises(InputSpecError, match="input 'x' has B=2 on axis 0 but the batch size asked for is 3"):
        spec.validate({"x": np.zeros((2, 2), np.float32)}, batch_size=3)
