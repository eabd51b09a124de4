"""The original request's README (pytorch_sedc_readme.md) works as written.

Its two usage blocks are copied here verbatim and run with ``exec``; the README leaves ``np`` and
``your_model`` to the reader, so the namespace provides them (a tiny model, to keep this fast).
"""

from __future__ import annotations

import numpy as np
import torch

SEED_API = ["create_explanation_mask", "create_perturbation_mask", "create_perturbed_image",
            "sedc_pytorch", "sedc_pytorch_batch"]

# "### Basic Usage", verbatim.
BASIC_USAGE = """
import torch
from sedc_pytorch import sedc_pytorch, sedc_pytorch_batch

# Setup
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
image = torch.randn(1, 3, 224, 224).to(device)
classifier = your_model.to(device)
segments = np.random.randint(0, 10, (224, 224))

# Run PyTorch-optimized SEDC
explanation, segments_in_explanation, perturbation, new_class, predicted_class_index = sedc_pytorch(
    image, classifier, segments, mode='mean', device=device
)
"""

# "### Batch Processing for Better Performance", verbatim (it reuses the names of the block above).
BATCH_PROCESSING = """
# Use batch processing for multiple perturbations
explanation, segments_in_explanation, perturbation, new_class, predicted_class_index = sedc_pytorch_batch(
    image, classifier, segments, mode='mean', device=device, batch_size=8
)
"""


def your_model() -> torch.nn.Module:
    """A tiny fixed classifier: 8 x 8 average pooling, then a linear layer to 10 classes."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.AvgPool2d(28), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 8 * 8, 10)).eval()


def check_seed_tuple(namespace: dict) -> tuple:
    explanation = namespace["explanation"]
    segments_in_explanation = namespace["segments_in_explanation"]
    perturbation = namespace["perturbation"]
    new_class, predicted_class_index = namespace["new_class"], namespace["predicted_class_index"]
    assert isinstance(explanation, np.ndarray) and explanation.shape == (224, 224, 3)
    assert isinstance(segments_in_explanation, list)
    assert all(isinstance(s, int) and 0 <= s < 10 for s in segments_in_explanation)
    assert isinstance(perturbation, torch.Tensor) and perturbation.shape == (1, 3, 224, 224)
    assert isinstance(new_class, int) and isinstance(predicted_class_index, int)
    assert 0 <= new_class < 10 and 0 <= predicted_class_index < 10
    assert (new_class != predicted_class_index) == bool(segments_in_explanation)
    return (segments_in_explanation, new_class, predicted_class_index)


def test_the_seed_readme_usage_blocks_run_as_written():
    np.random.seed(0)
    namespace = {"np": np, "your_model": your_model()}
    exec(BASIC_USAGE, namespace)
    basic = check_seed_tuple(namespace)
    exec(BATCH_PROCESSING, namespace)
    assert check_seed_tuple(namespace) == basic  # batching changes the speed, never the answer


def test_the_sedc_pytorch_module_holds_the_seed_api_and_nothing_else():
    import sedc
    import sedc_pytorch

    public = sorted(name for name in vars(sedc_pytorch) if not name.startswith("_"))
    assert public == SEED_API and sorted(sedc_pytorch.__all__) == SEED_API
    assert all(getattr(sedc_pytorch, name) is getattr(sedc, name) for name in SEED_API)
