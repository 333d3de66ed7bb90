"""Convert a resemblyzer speaker-encoder checkpoint to the ``.npz`` this package ships and loads.

    python -m models.diarization.convert PATH/TO/resemblyzer/pretrained.pt resemblyzer_encoder.npz

Only the network's tensors are kept (the LSTM's and the linear layer's), as float32 arrays under their PyTorch names;
the training state (step, optimizer, the GE2E similarity scale) is dropped. The checkpoint is read without torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from models.diarization.voice_encoder import read_encoder_state

NETWORK_PREFIXES = ("lstm.", "linear.")


def convert(source: str | Path, target: str | Path) -> list[str]:
    """Write the network's tensors of ``source`` to ``target`` (``.npz``); the names written, sorted."""
    state = read_encoder_state(source)
    arrays: dict[str, Any] = {
        name: np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        for name, value in state.items()
        if name.startswith(NETWORK_PREFIXES)
    }
    if not arrays:
        raise ValueError(f"{source}: no lstm.* or linear.* tensors: not a resemblyzer voice encoder checkpoint")
    np.savez_compressed(Path(target), **dict(sorted(arrays.items())))
    return sorted(arrays)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="resemblyzer's pretrained.pt (or a torch.save of the same state dict)")
    parser.add_argument("target", help="the .npz to write")
    args = parser.parse_args(argv)
    names = convert(args.source, args.target)
    print(f"{args.target}: {len(names)} tensors")


if __name__ == "__main__":
    main()
