"""Time one LSTM training step beside a hand-fused NumPy ceiling and PyTorch: `python benchmarks/lstm.py --help`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tinygrad_lstm.benchmarks.lstm import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
