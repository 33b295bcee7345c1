import sys
from pathlib import Path

# Shared test helpers (e.g. training_fixtures) live next to the tests.
sys.path.insert(0, str(Path(__file__).parent))
