"""Fixed nuScenes tables (categories, attributes, visibility levels, sensors) and small record helpers.

Tokens of these shared records do not depend on the seed, so datasets
written with different seeds or splits agree on them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike

from syncl_ros.geometry import Transform
from syncl_ros.rig import RigSpec

# The nuScenes category taxonomy; the synthetic world uses the seven tracking classes.
CATEGORIES = (
    ("human.pedestrian.adult", "Adult pedestrian moving around the city."),
    ("human.pedestrian.child", "Child pedestrian."),
    ("human.pedestrian.wheelchair", "Person in a wheelchair."),
    ("human.pedestrian.stroller", "Stroller with or without a child."),
    ("human.pedestrian.personal_mobility", "Scooter, skateboard, segway and similar."),
    ("human.pedestrian.police_officer", "Police officer."),
    ("human.pedestrian.construction_worker", "Construction worker."),
    ("animal", "Any animal."),
    ("vehicle.car", "Passenger car, van, pickup or SUV."),
    ("vehicle.motorcycle", "Motorcycle or scooter with an engine."),
    ("vehicle.bicycle", "Human-powered bicycle."),
    ("vehicle.bus.bendy", "Articulated bus."),
    ("vehicle.bus.rigid", "Rigid bus."),
    ("vehicle.truck", "Vehicle mainly for carrying cargo."),
    ("vehicle.construction", "Vehicle for construction work."),
    ("vehicle.emergency.ambulance", "Ambulance."),
    ("vehicle.emergency.police", "Police car or motorcycle."),
    ("vehicle.trailer", "Trailer pulled by another vehicle or parked."),
    ("movable_object.barrier", "Temporary barrier."),
    ("movable_object.trafficcone", "Traffic cone."),
    ("movable_object.pushable_pullable", "Object pushed or pulled by a person."),
    ("movable_object.debris", "Debris on the road."),
    ("static_object.bicycle_rack", "Rack of parked bicycles."),
)

ATTRIBUTES = (
    ("vehicle.moving", "Vehicle is moving."),
    ("vehicle.stopped", "Vehicle with a driver is standing still, e.g. at a traffic light."),
    ("vehicle.parked", "Vehicle is parked without intent to move."),
    ("cycle.with_rider", "There is a rider on the bicycle or motorcycle."),
    ("cycle.without_rider", "There is no rider on the bicycle or motorcycle."),
    ("pedestrian.sitting_lying_down", "The pedestrian is sitting or lying down."),
    ("pedestrian.standing", "The pedestrian is standing."),
    ("pedestrian.moving", "The pedestrian is moving."),
)

VISIBILITY = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)


def _token(*parts: str) -> str:
    return hashlib.sha1("/".join(("syncl-synth", *parts)).encode()).hexdigest()[:32]


def category_token(name: str) -> str:
    return _token("category", name)


def attribute_token(name: str) -> str:
    return _token("attribute", name)


def sensor_token(channel: str) -> str:
    return _token("sensor", channel)


def categories() -> list[dict[str, Any]]:
    return [{"token": category_token(n), "name": n, "description": d} for n, d in CATEGORIES]


def attributes() -> list[dict[str, Any]]:
    return [{"token": attribute_token(n), "name": n, "description": d} for n, d in ATTRIBUTES]


def visibilities() -> list[dict[str, Any]]:
    return [{"token": t, "level": lvl, "description": d} for t, lvl, d in VISIBILITY]


def sensors(rig: RigSpec) -> list[dict[str, Any]]:
    rows = [
        {"token": sensor_token(c.channel), "channel": c.channel, "modality": "camera"} for c in rig.cameras
    ]
    rows.append({"token": sensor_token(rig.lidar.channel), "channel": rig.lidar.channel, "modality": "lidar"})
    return rows


def calibration(sensor_to_ego: Transform, K: ArrayLike | None) -> dict[str, Any]:
    """calibrated_sensor fields: the sensor frame in the ego frame (optical frame for cameras)."""
    return {
        "translation": sensor_to_ego.translation.tolist(),
        "rotation": sensor_to_ego.rotation.elements.tolist(),
        "camera_intrinsic": [] if K is None else np.asarray(K, dtype=np.float64).tolist(),
    }


def write_map(root: Path, rows: dict[str, list[dict[str, Any]]], map_token: str) -> None:
    """One map record covering all logs, with a small placeholder semantic-prior mask.

    The devkit only checks that the mask file exists; the synthetic streets
    are not rasterised into it.
    """
    filename = f"maps/{map_token}.png"
    path = root / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", np.zeros((64, 64), dtype=np.uint8))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    path.write_bytes(png.tobytes())
    rows["map"] = [
        {
            "token": map_token,
            "log_tokens": [log["token"] for log in rows["log"]],
            "category": "semantic_prior",
            "filename": filename,
        }
    ]
