"""Object classes: the ten nuScenes detection classes (the model's outputs)
and the seven tracking classes that the nuScenes tracking benchmark scores."""

from __future__ import annotations

DETECTION_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
TRACKING_CLASSES: tuple[str, ...] = ("bicycle", "bus", "car", "motorcycle", "pedestrian", "trailer", "truck")
NUM_CLASSES = len(DETECTION_CLASSES)
LABEL_OF = {name: i for i, name in enumerate(DETECTION_CLASSES)}
# Labels the tracker reports (the others are static clutter in nuScenes).
TRACKING_LABELS: tuple[int, ...] = tuple(LABEL_OF[name] for name in TRACKING_CLASSES)


def label_of_category(category: str) -> int | None:
    """Detection label of a nuScenes category name (e.g. 'vehicle.bus.rigid'), None if not scored."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    name = category_to_detection_name(category)
    return None if name is None else LABEL_OF[name]


def is_tracking_label(label: int) -> bool:
    return DETECTION_CLASSES[label] in TRACKING_CLASSES
