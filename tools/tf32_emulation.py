"""Emulate on a CPU the GPU's default float32 convolutions (TF32) and compare with the reference.

PyTorch runs float32 cuDNN convolutions in TF32 by default (``torch.backends.cudnn.allow_tf32``
is True; ``torch.backends.cudnn.conv.fp32_precision == "tf32"``): each operand is rounded to a
10-bit mantissa before the multiply. This script rounds the inputs and weights of every
convolution of the built-in EfficientNet-Lite0, and of the blur fill's convolution, the same way
(round to nearest), runs ``sedc.explain`` with them and compares each answer with the reference's
on the unmodified CPU model: the CUDA test's photos and fills by default. See docs/runtime.md,
"On a GPU".

    PYTHONPATH=src python tools/tf32_emulation.py                 # a few minutes on 2 cores
    PYTHONPATH=src python tools/tf32_emulation.py --photos rocket --modes harmonic
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

import sedc
import sedc.models
from sedc import reference
from sedc.core import perturbation
from sedc.imaging.samples import sample_photo
from sedc.imaging.segmentation import segment


def tf32(t: torch.Tensor) -> torch.Tensor:
    """Round float32 values to TF32's 10-bit mantissa (to nearest), kept in float32."""
    bits = t.detach().contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


def tf32_model(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``net`` whose convolutions see TF32-rounded inputs and weights."""
    out = copy.deepcopy(net).eval()
    for module in out.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data = tf32(module.weight.data)
            module.register_forward_pre_hook(lambda _, inputs: (tf32(inputs[0]), *inputs[1:]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="rocket,astronaut,coffee")
    parser.add_argument("--modes", default="mean,blur,random,harmonic")
    args = parser.parse_args()
    net = sedc.models.load("efficientnet-lite0", device="cpu").module.eval()
    emulated = tf32_model(net)
    real_conv2d = F.conv2d

    def conv2d_tf32(x, weight, *rest, **kwargs):
        return real_conv2d(tf32(x), tf32(weight), *rest, **kwargs)

    for name in args.photos.split(","):
        image = sample_photo(name)
        segments = segment(image, "quickshift")
        for mode in args.modes.split(","):
            ref = reference.sedc(image, reference.TorchPredictor(net), segments, mode)
            expected = sorted(ref.segments_in_explanation)
            perturbation.F.conv2d = conv2d_tf32  # the blur fill is a convolution too
            try:
                got = sedc.explain(image, emulated, segments, mode=mode)
            finally:
                perturbation.F.conv2d = real_conv2d
            same = got.removed == expected and got.new_class == ref.new_class
            print(f"{name:10s} {mode:9s} reference {expected} -> {ref.new_class}; "
                  f"TF32-emulated explain {got.removed} -> {got.new_class}: "
                  f"{'same' if same else 'DIFFERENT'}", flush=True)


if __name__ == "__main__":
    main()
