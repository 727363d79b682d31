import pytest

from hwfit.core import Device, UnknownDevice, is_gpu


@pytest.mark.parametrize(
    "name, kind, index, text",
    [
        ("cpu", "cpu", None, "cpu"),
        ("CPU ", "cpu", None, "cpu"),
        ("cuda", "cuda", 0, "cuda:0"),
        ("cuda:3", "cuda", 3, "cuda:3"),
        ("emulated", "emulated", None, "emulated"),
        ("emulated:fast", "emulated", None, "emulated:fast"),
    ],
)
def test_parse_names_the_kind_and_index_and_prints_back(name, kind, index, text):
    device = Device.parse(name)
    assert (device.kind, device.index, str(device)) == (kind, index, text)
    assert Device.parse(str(device)) == device


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cuda:-1", "gpu0", ""])
def test_unknown_names_are_refused_with_what_is_expected(name):
    with pytest.raises(UnknownDevice, match="expected 'cpu' or 'cuda:N'"):
        Device.parse(name)


def test_only_cuda_is_a_gpu_and_a_pool_spreads_over_the_following_gpus():
    assert Device.parse("cuda:1").is_gpu and not Device.parse("cpu").is_gpu
    assert not Device.parse("emulated:gpu").is_gpu  # emulated devices are never real GPUs
    assert is_gpu("cuda:2") and is_gpu("cuda") and not is_gpu("cudax") and not is_gpu("cpu")
    assert [str(d) for d in Device.parse("cuda:2").offset(3)] == ["cuda:2", "cuda:3", "cuda:4"]
    assert [str(d) for d in Device.parse("cpu").offset(2)] == ["cpu", "cpu"]
