"""crowdcount: find and count people (bodies and faces) in videos.

The package is layered; imports flow one way only::

    cli  ->  aws  ->  analyzer  ->  detectors

``config`` and ``errors`` sit beside them and may be imported by any layer. Nothing heavy (TensorFlow,
OpenCV, boto3) is imported here, so ``import crowdcount`` and ``crowdcount --help`` stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
