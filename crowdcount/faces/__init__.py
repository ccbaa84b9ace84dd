"""Faces: who is there. Galleries of enrolled people, enrolment from photos, and identification in videos.

Built on the face detector (:mod:`crowdcount.detectors.face`) and the face embedders
(:mod:`crowdcount.detectors.embedders`); knows nothing of clouds: :func:`open_gallery` opens a gallery by its
location, a local file by default, other schemes through :func:`register_scheme` (``crowdcount.aws.gallery``
registers ``dynamodb://``). :func:`~crowdcount.faces.identify.gallery_stage` is the identify stage of
:func:`crowdcount.analyzer.pipeline.build_pipeline`.
"""

from __future__ import annotations

from crowdcount.faces.enroll import Enroller, PhotoFace, expand_photos, people_folder, read_photo
from crowdcount.faces.gallery import (
    UNKNOWN,
    Gallery,
    GalleryIndex,
    LocalGallery,
    Matches,
    Person,
    open_gallery,
    register_scheme,
)
from crowdcount.faces.identify import FaceIdentifier, gallery_stage

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
    "gallery_stage",
    "open_gallery",
    "people_folder",
    "read_photo",
    "register_scheme",
]
