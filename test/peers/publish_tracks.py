"""A separate process that publishes one TrackedObject3DArray and one
Detection3DArray at 10 Hz until killed or until the timeout (seconds) given as argv[1]."""

import sys
import time

import rclpy
from geometry_msgs.msg import Pose, Vector3
from syncl_ros.msg import TrackedObject3D, TrackedObject3DArray
from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesisWithPose


def tracks(seq: int) -> TrackedObject3DArray:
    msg = TrackedObject3DArray()
    msg.header.frame_id = "base_link"
    msg.header.stamp.sec = seq
    obj = TrackedObject3D(track_id=42, label=TrackedObject3D.LABEL_PEDESTRIAN, class_name="pedestrian")
    obj.uuid.uuid = list(range(16))
    obj.score = 0.75
    obj.age, obj.hits, obj.frames_since_update = 5, 4, 1
    obj.pose = Pose()
    obj.pose.position.x, obj.pose.position.y, obj.pose.position.z = 12.5, -3.25, 0.9
    obj.size = Vector3(x=0.7, y=0.6, z=1.8)
    obj.velocity = Vector3(x=1.5, y=0.0, z=0.0)
    obj.has_covariance = True
    obj.pose_covariance[0] = 0.04
    msg.objects.append(obj)
    return msg


def detections(seq: int) -> Detection3DArray:
    msg = Detection3DArray()
    msg.header.frame_id = "base_link"
    msg.header.stamp.sec = seq
    det = Detection3D(id="42")
    det.bbox = BoundingBox3D(size=Vector3(x=4.5, y=1.9, z=1.6))
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = "car"
    hyp.hypothesis.score = 0.5
    det.results.append(hyp)
    msg.detections.append(det)
    return msg


def main() -> None:
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    rclpy.init()
    node = rclpy.create_node("syncl_test_publisher")
    pub_tracks = node.create_publisher(TrackedObject3DArray, "test_tracks", 10)
    pub_dets = node.create_publisher(Detection3DArray, "test_detections", 10)
    end = time.monotonic() + timeout
    seq = 0
    while time.monotonic() < end:
        pub_tracks.publish(tracks(seq))
        pub_dets.publish(detections(seq))
        seq += 1
        time.sleep(0.1)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
