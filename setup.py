"""Offline installation of syncl_ros (library + `syncl` command) without ROS.

In a ROS 2 workspace, colcon builds the package with CMakeLists.txt instead
(messages, nodes, launch and config). Name, version and license must match
package.xml (a test checks it).
"""

from glob import glob

from setuptools import find_packages, setup

setup(
    name="syncl_ros",
    version="0.1.0",
    license="Apache-2.0",
    description="Six-camera end-to-end 3D multi-object tracking for ROS 2, trained with SynCL",
    python_requires=">=3.10",
    packages=find_packages(include=("syncl_ros", "syncl_ros.*")),
    package_data={
        "syncl_ros": ["weights/*.pt", "weights/*.md"],
        "syncl_ros.inference": ["tensorrt_onnx_ops.txt"],
    },
    data_files=[
        ("share/syncl_ros/config", sorted(glob("config/*"))),
        ("share/syncl_ros/msg", sorted(glob("msg/*.msg"))),
    ],
    install_requires=[
        "numpy<2",
        "torch",
        "onnx",
        "onnxruntime",
        "nuscenes-devkit",
        "motmetrics==1.4.0",
        "pandas<3",
        "scipy",
        "matplotlib",
        "rosbags",
        "pyquaternion",
        "opencv-python-headless<4.12",
        "PyYAML",
        "tqdm",
    ],
    entry_points={"console_scripts": ["syncl = syncl_ros.cli:main"]},
)
