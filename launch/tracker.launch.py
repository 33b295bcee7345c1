"""Launch the syncl_ros tracker node.

    ros2 launch syncl_ros tracker.launch.py [params_file:=...] [model:=...] [backend:=...]
        [tracker:=queries|greedy] [use_sim_time:=true] [namespace:=...]
        [autostart:=false] [camera_timeout_s:=...] [frame_timeout_s:=...] [min_cameras:=...]
        [min_frame_cameras:=...] [max_ego_gap_s:=...] [overlay:=true]
        [cam_front:=/my/front/image cam_front_info:=...]

Defaults match bags written by `syncl convert` (config/tracker.yaml, the nuScenes preset).
The launch arguments override the parameter file, so their defaults are its values;
tracker:=METHOD sets the parameter tracker.method (empty: the model's stored method).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def camera_arguments() -> list[DeclareLaunchArgument]:
    args = []
    for channel in CAMERAS:
        key = channel.lower()
        args.append(
            DeclareLaunchArgument(
                key, default_value=f"/{channel}/image_rect_compressed", description=f"{channel} image topic"
            )
        )
        args.append(
            DeclareLaunchArgument(
                f"{key}_info",
                default_value=f"/{channel}/camera_info",
                description=f"{channel} CameraInfo topic",
            )
        )
    return args


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("syncl_ros"))
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=str(share / "config" / "tracker.yaml"),
            description="node parameters (YAML)",
        ),
        DeclareLaunchArgument(
            "model",
            default_value="",
            description="checkpoint or export folder; empty: the shipped default model",
        ),
        DeclareLaunchArgument(
            "backend", default_value="auto", description="auto | tensorrt | onnxruntime | torch"
        ),
        DeclareLaunchArgument(
            "tracker", default_value="", description="queries | greedy; empty: the model's stored method"
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (bag replay)"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="configure and activate at start; false: wait for a lifecycle manager",
        ),
        DeclareLaunchArgument(
            "camera_timeout_s",
            default_value="1.0",
            description="diagnostics WARN for a camera silent, or all its images dropped, this long",
        ),
        DeclareLaunchArgument(
            "frame_timeout_s",
            default_value="1.0",
            description="diagnostics ERROR when no frame was processed this long",
        ),
        DeclareLaunchArgument(
            "min_cameras", default_value="1", description="diagnostics ERROR when fewer cameras deliver"
        ),
        DeclareLaunchArgument(
            "min_frame_cameras",
            default_value="1",
            description="fewest usable cameras a frame is processed with (the others masked out); 6: all",
        ),
        DeclareLaunchArgument(
            "max_ego_gap_s",
            default_value="0.3",
            description="ego pose gaps up to this long continue the last ego motion; longer: frames dropped",
        ),
        DeclareLaunchArgument(
            "overlay",
            default_value="false",
            description="publish ~/overlay: the six camera inputs with the tracks' boxes (JPEG)",
        ),
        *camera_arguments(),
    ]
    overrides = {
        # Typed as strings: an empty argument would otherwise be read as YAML null.
        "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
        "backend": LaunchConfiguration("backend"),
        "use_sim_time": LaunchConfiguration("use_sim_time"),
        # Typed, so that camera_timeout_s:=2 is a float and autostart:=False a bool.
        "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
        "camera_timeout_s": ParameterValue(LaunchConfiguration("camera_timeout_s"), value_type=float),
        "frame_timeout_s": ParameterValue(LaunchConfiguration("frame_timeout_s"), value_type=float),
        "min_cameras": ParameterValue(LaunchConfiguration("min_cameras"), value_type=int),
        "min_frame_cameras": ParameterValue(LaunchConfiguration("min_frame_cameras"), value_type=int),
        "max_ego_gap_s": ParameterValue(LaunchConfiguration("max_ego_gap_s"), value_type=float),
        "overlay": ParameterValue(LaunchConfiguration("overlay"), value_type=bool),
        "image_topics": [LaunchConfiguration(c.lower()) for c in CAMERAS],
        "camera_info_topics": [LaunchConfiguration(f"{c.lower()}_info") for c in CAMERAS],
    }
    return LaunchDescription([*args, OpaqueFunction(function=tracker_node, args=[overrides])])


def tracker_node(context: LaunchContext, overrides: dict[str, object]) -> list[Node]:
    # tracker.method is unset (the model's method) unless the tracker argument names one.
    method = LaunchConfiguration("tracker").perform(context)
    chosen = {"tracker.method": method} if method else {}
    node = Node(
        package="syncl_ros",
        executable="tracker_node",
        name="syncl_tracker",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides, chosen],
        output="screen",
    )
    return [node]
