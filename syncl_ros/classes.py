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


# Fixed colours per class (RGB in [0, 1]), so a class looks the same in RViz markers, camera
# overlays and the bird's-eye view of every run.
CLASS_COLORS: dict[str, tuple[float, float, float]] = {
    "car": (0.12, 0.47, 0.71),
    "truck": (1.00, 0.50, 0.05),
    "construction_vehicle": (0.55, 0.34, 0.29),
    "bus": (0.84, 0.15, 0.16),
    "trailer": (0.58, 0.40, 0.74),
    "barrier": (0.50, 0.50, 0.50),
    "motorcycle": (0.89, 0.47, 0.76),
    "bicycle": (0.74, 0.74, 0.13),
    "pedestrian": (0.17, 0.63, 0.17),
    "traffic_cone": (0.09, 0.75, 0.81),
}
UNKNOWN_COLOR = (0.8, 0.8, 0.8)
