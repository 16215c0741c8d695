"""One freshflow push in an interpreter of its own, for bench_push.py.

The benchmark measures this process from outside (wall time, peak RSS, CPU).
The push runs here, alone, so those numbers are freshflow's push path and the
Python runtime it needs, not the benchmark's own imports.  Prints one JSON
line: the seconds from `connect()` to the last digest, the digests, and the
peak RSS before the push (after the imports), so the push's own share of the
memory can be told apart from the interpreter's.

    _push_child.py single IMAGE_ID REPOSITORY TAG
    _push_child.py multi IMAGE_ID REPOSITORY TAG [TAG ...]

`single` is `tasks.engine.tag_image` + `push_image`; `multi` is
`tasks.pushing.EnginePusher`, the seam the flow pushes through.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import engine
from tasks.pushing import EnginePusher


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    mode, image_id, repository, *tags = argv
    if mode not in ("single", "multi") or not tags:
        print(__doc__, file=sys.stderr)
        return 2
    rss_before_kb = _peak_rss_kb()
    started = time.perf_counter()
    api = engine.connect()
    try:
        if mode == "single":
            (tag,) = tags
            engine.tag_image(api, image_id, repository, tag)
            result = engine.push_image(
                api, repository, tag, auth=None, deadline=engine.Deadline(None)
            )
            digests = [result.digest]
        else:
            pushed = EnginePusher(api).push(
                image_id,
                repository,
                tuple(tags),
                None,
                engine.Deadline(None),
                on_pushed=lambda image: None,
            )
            digests = [image.digest for image in pushed]
    finally:
        api.close()
    seconds = time.perf_counter() - started
    report = {
        "seconds": seconds,
        "digests": digests,
        "rss_before_push_kb": rss_before_kb,
        "rss_peak_kb": _peak_rss_kb(),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
