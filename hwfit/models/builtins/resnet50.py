"""ResNet-50 with seeded random weights: compute-heavy vision profiling, defined here in plain
torch.nn (torchvision's architecture and state_dict keys, so its weights load unchanged)."""

from __future__ import annotations

from hwfit.models.model import Model, hash_module
from hwfit.models.spec import BATCH, InputSpec, TensorSpec

SEED = 0
# torchvision.models.resnet50: Bottleneck blocks per stage, and each stage's bottleneck width.
STAGE_BLOCKS = (3, 4, 6, 3)
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
NUM_CLASSES = 1000
PARAMETERS = 25_557_032  # torchvision's resnet50 has exactly this many


def resnet50_unavailable_reason() -> str | None:
    try:
        import torch  # noqa: F401 - imported only to check that it is installed and imports
    except ImportError:
        return "torch is not installed: pip install 'hwfit[torch]'"
    return None


def _bottleneck_class():
    from torch import nn

    class Bottleneck(nn.Module):
        """1x1 reduce, 3x3 (carrying the stride: ResNet v1.5), 1x1 expand, plus the shortcut."""

        def __init__(self, inplanes: int, width: int, stride: int, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, width * EXPANSION, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(width * EXPANSION)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + identity)

    return Bottleneck


def _resnet_class():
    import torch
    from torch import nn

    bottleneck = _bottleneck_class()

    class ResNet50(nn.Module):
        """torchvision's ResNet-50, module for module, in the order torchvision builds it."""

        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._stage(STAGE_WIDTHS[0], STAGE_BLOCKS[0], stride=1)
            self.layer2 = self._stage(STAGE_WIDTHS[1], STAGE_BLOCKS[1], stride=2)
            self.layer3 = self._stage(STAGE_WIDTHS[2], STAGE_BLOCKS[2], stride=2)
            self.layer4 = self._stage(STAGE_WIDTHS[3], STAGE_BLOCKS[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(STAGE_WIDTHS[3] * EXPANSION, NUM_CLASSES)
            self._init_weights()

        def _stage(self, width: int, blocks: int, stride: int):
            downsample = None
            if stride != 1 or self.inplanes != width * EXPANSION:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, width * EXPANSION, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(width * EXPANSION),
                )
            layers = [bottleneck(self.inplanes, width, stride, downsample)]
            self.inplanes = width * EXPANSION
            layers += [bottleneck(self.inplanes, width, 1, None) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def _init_weights(self):
            # torchvision's initialisation: He-normal convolutions, unit-scale BatchNorm.
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.constant_(module.weight, 1)
                    nn.init.constant_(module.bias, 0)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet50


def make_resnet50():
    """A fresh ResNet-50 in eval mode, weights drawn from torch's generator seeded with SEED."""
    import torch

    torch.manual_seed(SEED)
    return _resnet_class()().eval()


def load_resnet50() -> Model:
    module = make_resnet50()
    inputs = InputSpec((TensorSpec("image", "float32", (BATCH, 3, 224, 224), fill="normal"),))
    return Model(
        name="resnet50",
        source="resnet50",
        kind="builtin",
        inputs=inputs,
        output_names=("logits",),
        content_hash=hash_module(module),
        task="classification",
        description="ResNet-50 (torchvision's architecture, 25.6M params), seeded random weights, 224x224",
        module_factory=lambda: module,
    )
