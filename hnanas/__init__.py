"""hnanas: hardware-aware neural architecture search for infrared small-target segmentation."""

__version__ = "0.1.0"
