"""Lines and zones see the tracker's online ids while the video runs; the result file gives their crossings and
visitors the ids the tracker settled on at the end (its merge pass), the ids of ``people[]``."""

from __future__ import annotations

from pathlib import Path

from crowdcount.analyzer import VideoAnalyzer, to_document
from crowdcount.analyzer.counting import CountingProcessor, Line, Zone
from crowdcount.analyzer.tracking import TrackingProcessor
from tracking.test_relink import BlobDetector, ColourEmbedder, write_walkers


def test_crossings_and_zone_visitors_carry_the_people_ids_of_the_result_file(tmp_path: Path) -> None:
    # red walks along the top and is hidden for 2.5 s; with no online re-link only the merge pass joins its two
    # tracklets, so while the video ran its second tracklet had an id of its own
    video = write_walkers(tmp_path / "occluded.mp4", range(20, 45))
    tracking = TrackingProcessor(high_score=0.5, embedder=ColourEmbedder(), link_window_s=0.0)
    counting = CountingProcessor(
        [Line.parse("gate=0.6,0,0.6,1")], [Zone.parse("top=0,0,1,0,1,0.5,0,0.5")], tracking=tracking
    )
    document = to_document(VideoAnalyzer([BlobDetector(0.5)], processors=[tracking, counting]).analyze(video))
    people = {p["track_id"] for p in document["tracking"]["people"]}
    assert people == {1, 2} and document["tracking"]["appearance"]["tracklets"] == 3
    (line,) = document["counting"]["lines"]
    # red (1) crosses left to right after it came back (its feet at x = 120 px at frame 55), green (2) right to left
    assert sorted((c["track_id"], c["direction"]) for c in line["crossings"]) == [(1, "out"), (2, "in")]
    (zone,) = document["counting"]["zones"]
    # red is the zone's one visitor, twice: before and after it was hidden
    assert zone["visitors"] == 1
    assert [(p["track_id"], p["visits"]) for p in zone["people"]] == [(1, 2)]
