"""Workflows that compose the layers below them: the demo (node over DDS, evaluation, pictures),
`syncl bench` (backends, the node, the soak), learning curves and tracker tuning (offline
tracking scored with the official metrics). Nothing below imports them."""
