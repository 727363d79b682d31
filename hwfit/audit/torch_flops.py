"""Run a PyTorch program with torch.utils.flop_counter counting every FLOP it executes, and write the
total to the file named by HWFIT_AUDIT_FLOPS_FILE when it exits: the useful work of an audited COMMAND.

    python -m hwfit.audit.torch_flops script.py [args ...]     # what `hwfit audit --count-flops` runs

The counter dispatches every op through Python, so the program runs slower than it would alone; the
audit says so. Only matmuls, convolutions and attention are counted (what flop_counter knows): the
arithmetic that dominates, not elementwise ops.
"""

from __future__ import annotations

import json
import os
import runpy
import sys

FLOPS_FILE_ENV = "HWFIT_AUDIT_FLOPS_FILE"


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m hwfit.audit.torch_flops SCRIPT.py [ARGS ...]")
    from torch.utils.flop_counter import FlopCounterMode

    script, sys.argv = sys.argv[1], sys.argv[1:]
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            runpy.run_path(script, run_name="__main__")
    finally:
        target = os.environ.get(FLOPS_FILE_ENV)
        if target:
            with open(target, "w") as out:
                json.dump({"flops": counter.get_total_flops(), "script": script}, out)


if __name__ == "__main__":
    main()
