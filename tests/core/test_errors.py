import pytest
import torch

from lumos.core.errors import LumosError, LumosTypeError, bad_param, check
from lumos.core.validation import check_choice, check_in_range, check_tensor


def test_message_shape():
    err = bad_param("noise", "a number in [0, 1)", 1.5, owner="inject_noise", fix="Pass a fraction.")
    assert str(err) == "The 'noise' parameter of inject_noise must be a number in [0, 1). Got 1.5 instead. Pass a fraction."
    assert isinstance(err, ValueError)
    assert isinstance(bad_param("x", "y", 1, type_error=True), TypeError)


def test_check_is_not_an_assert():
    with pytest.raises(LumosError):
        check(False, "multi\nline   message")
    try:
        check(False, "multi\nline")
    except LumosError as e:
        assert "\n" not in str(e)


def test_validation_helpers():
    with pytest.raises(LumosTypeError):
        check_tensor([1, 2], "x")
    with pytest.raises(LumosError, match="3-D"):
        check_tensor(torch.zeros(2, 2), "x", ndim=3)
    with pytest.raises(LumosTypeError, match="dtypes"):
        check_tensor(torch.zeros(2, dtype=torch.int64), "x", dtypes=(torch.float32,))
    with pytest.raises(LumosError, match=r"\(\*, 4\)"):
        check_tensor(torch.zeros(2, 3), "x", shape=(None, 4))
    with pytest.raises(LumosError, match="range"):
        check_in_range(2.0, "p", 0, 1)
    with pytest.raises(LumosError, match="one of"):
        check_choice("c", "m", ["a", "b"])
