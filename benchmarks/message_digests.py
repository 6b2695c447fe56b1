"""The sha256 of every message a profile writes, by compressor configuration: run it before and after a
refactoring that must not change behaviour, and diff the two outputs.

    python benchmarks/message_digests.py > before.txt     # in a fresh cache, from the repository root
    python benchmarks/message_digests.py --profile fashion-mnist --bounds occam > before-fm.txt

Arguments after the script's own are passed to ``bench run`` (messages do not depend on the bounds, so
``--bounds occam`` saves time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CACHE_DIR": f"{tmp}/cache", "BENCH_PROGRESS": "0"}
        subprocess.run([str(Path(sys.executable).parent / "bench"), "run", "--results", f"{tmp}/results",
                        "--no-leaderboard", *sys.argv[1:]], cwd=root, env=env, check=False, capture_output=True)
        lines = []
        for meta_path in sorted(Path(tmp, "results", "_artifacts").glob("*/meta.json")):
            meta = json.loads(meta_path.read_text())
            config = json.dumps(meta["compressor_params"], sort_keys=True)
            lines.append(f"{meta['compressor']} {config} {meta['sha256']} {meta['bits']}")
    print("\n".join(sorted(lines)))


if __name__ == "__main__":
    main()
