"""Synthetic six-camera street scenes, rendered and written as a nuScenes-format dataset.

Main entry points: :func:`world.simulate` (the scene at any time),
:func:`views.render_frame` / :func:`views.render_camera` (images at any
resolution) and :func:`writer.write_dataset` (the dataset on disk).
"""
