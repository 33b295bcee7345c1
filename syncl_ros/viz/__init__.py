"""Pictures of what the tracker sees: camera overlays, the bird's-eye view, scene renders."""
