"""Imaging: superpixel segmentation and inpainting fills (scikit-image, OpenCV and PyTorch)."""

from .segmentation import METHODS, segment

__all__ = ["METHODS", "segment"]
