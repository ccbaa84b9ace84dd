"""The analyzer: decodes videos, samples and batches frames, runs detectors, writes result files.

It receives built detectors and knows nothing of clouds.
"""

from __future__ import annotations

from crowdcount.analyzer.analyzer import AnalysisResult, FrameResult, VideoAnalyzer
from crowdcount.analyzer.result import SCHEMA_VERSION, summarize, to_document, write_csv, write_json
from crowdcount.analyzer.video import FrameReader, FrameSampler, VideoInfo, probe_video

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisResult",
    "FrameReader",
    "FrameResult",
    "FrameSampler",
    "VideoAnalyzer",
    "VideoInfo",
    "probe_video",
    "summarize",
    "to_document",
    "write_csv",
    "write_json",
]
