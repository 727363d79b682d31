"""A writer process for the kill and concurrency tests: records points in a loop, one line per point.

usage: python writer.py DB_PATH COUNT   (COUNT 0 = forever). Prints the run id, then each recorded key.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from samples import environment, failed_measurement, full_measurement

from hwfit.store import open_store


def main() -> None:
    db_path, count = sys.argv[1], int(sys.argv[2])
    with open_store(db_path) as store:
        run = store.start_run(
            "writer-model", "builtin:writer", "feedface" * 8, "sweep-1", {"argv": sys.argv[1:]}, environment()
        )
        print(f"run {run.id}", flush=True)
        index = 0
        while count == 0 or index < count:
            key = f"ort/cpu/fp32/b{index}/t2"
            measurement = failed_measurement(key) if index % 7 == 3 else full_measurement(key, scale=index + 1)
            store.record(run.id, measurement)
            print(key, flush=True)
            index += 1
        store.finish_run(run.id, "complete")


if __name__ == "__main__":
    main()
