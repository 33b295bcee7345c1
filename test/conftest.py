import sys
from pathlib import Path

import pytest

# Shared test helpers (e.g. training_fixtures) live next to the tests.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def synth_val_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic val split shared by the tests: 2 scenes of 2.5 s (5 key frames each)."""
    from syncl_ros.data.synth.writer import write_dataset

    root = tmp_path_factory.mktemp("synth_val")
    write_dataset(root, scenes=2, seed=7, split="val", duration_s=2.5, workers=2, progress=False)
    return root
