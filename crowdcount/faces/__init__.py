"""Faces: who is there. Galleries of enrolled people, enrolment from photos, and identification in videos.

Built on the face detector (:mod:`crowdcount.detectors.face`) and the face embedders
(:mod:`crowdcount.detectors.embedders`); knows nothing of clouds (the DynamoDB gallery is in
:mod:`crowdcount.aws.gallery`).
"""

from __future__ import annotations

from crowdcount.faces.enroll import Enroller, PhotoFace, expand_photos, people_folder, read_photo
from crowdcount.faces.gallery import UNKNOWN, Gallery, GalleryIndex, LocalGallery, Matches, Person
from crowdcount.faces.identify import FaceIdentifier

__all__ = [
    "UNKNOWN",
    "Enroller",
    "FaceIdentifier",
    "Gallery",
    "GalleryIndex",
    "LocalGallery",
    "Matches",
    "Person",
    "PhotoFace",
    "expand_photos",
    "people_folder",
    "read_photo",
]
