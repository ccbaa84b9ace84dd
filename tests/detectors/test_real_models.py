"""The shipped models on real footage and photos (../shared/data): counts close to the ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdcount.detectors import build_detector
from crowdcount.eval import IgnoreRegion, detect_images, detect_video, evaluate_run, read_imglab, read_mot
from crowdcount.eval.runner import read_rgb

pytestmark = [pytest.mark.real_model, pytest.mark.needs_data]

#: People on the far footpath of PETS09-S2L1 are not annotated (see ../shared/data/README.md).
FAR_FOOTPATH = IgnoreRegion.parse("0,0,480,70")


def pets_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = {}
    for index in range(1, max(wanted) + 1):
        ok, bgr = cap.read()
        assert ok
        if index in wanted:
            frames[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    cap.release()
    return frames


@pytest.mark.parametrize(
    "args",
    [{}, {"preset": "nanodet", "runtime": "tflite"}, {"preset": "nanodet", "runtime": "saved_model"}],
    ids=["default", "nanodet-tflite", "nanodet-saved_model"],
)
def test_human_detector_counts_pets09(shared_data: Path, args: dict) -> None:
    pets = shared_data / "pets09"
    gt = read_mot(pets / "gt_frames001-124.txt", video_size=(480, 360))
    wanted = {1, 30, 60, 90, 120}
    frames = pets_frames(pets / "vtest.avi", wanted)
    detector = build_detector("human", {**args, "max_batch_size": 2})
    results = detector.detect([frames[i] for i in sorted(wanted)])
    errors = []
    for index, dets in zip(sorted(wanted), results, strict=True):
        feet_far = FAR_FOOTPATH.contains_feet(dets.xyxy)
        assert dets.class_id.tolist() == [1] * len(dets)
        errors.append(int((~feet_far).sum()) - gt.frames[index].count)
    assert max(abs(e) for e in errors) <= 2, errors
    assert np.mean(np.abs(errors)) <= 1.0, errors


def test_default_human_detector_ap_on_pets09_start(shared_data: Path) -> None:
    pets = shared_data / "pets09"
    gt = read_mot(pets / "gt_frames001-124.txt", video_size=(480, 360))
    keys = list(range(1, 21))
    run = detect_video(pets / "vtest.avi", build_detector("human"), keys)
    report = evaluate_run(run, gt, keys, ignore_regions=[FAR_FOOTPATH])
    assert report.frames == 20
    assert report.ap >= 0.85, report.to_dict(per_frame=False)
    assert report.count_mae <= 1.0


def test_default_person_model_errors_are_one_line(tmp_path: Path) -> None:
    from crowdcount.detectors.person_tf import PersonDetection0203TF
    from crowdcount.errors import DetectorError

    with pytest.raises(DetectorError, match="is missing"):
        PersonDetection0203TF("openvino", folder=tmp_path).load()
    source = PersonDetection0203TF("openvino").folder
    (tmp_path / "model.json").write_text((source / "model.json").read_text())
    (tmp_path / "person-detection-0203.tflite").write_bytes(b"\0" * 64)
    for runtime in ("openvino", "tflite"):
        with pytest.raises(DetectorError, match="cannot be loaded") as info:
            PersonDetection0203TF(runtime, folder=tmp_path).load()
        assert "\n" not in str(info.value)


def test_ssdlite_preset_and_model_path_still_load_od_api_models(shared_data: Path) -> None:
    from crowdcount.detectors.human import default_ssdlite_path

    frame = pets_frames(shared_data / "pets09" / "vtest.avi", {60})[60]
    fast = build_detector("human", {"preset": "ssdlite", "min_detection_score": 0.3}).detect([frame])[0]
    by_path = build_detector("human", {"model_path": str(default_ssdlite_path()), "min_detection_score": 0.3})
    same = by_path.detect([frame])[0]
    assert len(fast) >= 2
    np.testing.assert_allclose(fast.xyxy, same.xyxy, atol=1e-3)
    assert by_path.model_info()["format"] == "frozen_graph"


def test_face_detector_finds_the_annotated_faces(shared_data: Path) -> None:
    gt = read_imglab(shared_data / "faces" / "testing.xml")
    detector = build_detector("face")
    report = evaluate_run(detect_images([str(k) for k in gt.frames], detector), gt)
    assert report.gt_total == 25
    assert report.recall >= 0.9 and report.precision >= 0.9, report.to_dict(per_frame=False)
    assert not len(detector.detect([read_rgb(shared_data / "faces" / "dogs.jpg")])[0])  # a photo of dogs


def test_default_person_model_nms_is_set_for_crowds(shared_data: Path) -> None:
    from crowdcount.detectors.person_tf import PersonDetection0203TF

    frame = pets_frames(shared_data / "pets09" / "vtest.avi", {60})[60][:352, :, ::-1].copy()
    crowd = PersonDetection0203TF("openvino")
    assert (crowd.iou_threshold, crowd.max_boxes) == (0.7, 300)
    few = PersonDetection0203TF("openvino", max_boxes=3)(frame)
    assert len(few) == 3 and len(crowd(frame)) > 3
