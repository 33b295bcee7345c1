"""The frame pipeline, free of ROS: a synchronized rig frame (images, calibration, ego pose,
stamp, camera mask) in, tracks and per-stage timings out (frame_pipeline.py), and its live side
(live.py: rig synchronizer, TF buffer, ego poses through gaps, health, one worker). The node,
offline tracking (offline.py, `syncl track`), the backend benchmark (bench.py) and the demo
all run it. It sits above the inference backends and below training, evaluation and ROS."""
