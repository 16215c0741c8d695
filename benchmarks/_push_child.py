"""One freshflow push in an interpreter of its own, for bench_push.py.

The benchmark measures this process from outside (wall time, peak RSS, CPU).
The push runs here, alone, so those numbers are freshflow's push path and the
Python runtime it needs, not the benchmark's own imports.  Prints one JSON
line: the seconds from `connect()` to the last digest, the digests, and the
peak RSS before the push (after the imports), so the push's own share of the
memory can be told apart from the interpreter's.

    _push_child.py engine single IMAGE_ID REPOSITORY TAG
    _push_child.py engine multi IMAGE_ID REPOSITORY TAG [TAG ...]
    _push_child.py registry single|multi IMAGE_ID REPOSITORY TAG [TAG ...]
                   --cache-dir DIR --spool-dir DIR

`engine single` is `tasks.engine.tag_image` + `push_image`; `engine multi`
is `tasks.pushing.EnginePusher`, the seam the flow pushes through.
`registry` (both modes) is `tasks.pushing.make_pusher` with
`PushSettings(via="registry", cache_dir=..., spool_dir=...)`, i.e. a
`tasks.registry_push.RegistryPusher`; its concurrency, gzip level and gzip threads are
the settings' defaults unless FRESHFLOW_PUSH_* variables say otherwise, and
the JSON line reports them.  The layer cache in --cache-dir outlives this
process, as a worker's does.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import engine
from tasks.pushing import EnginePusher, make_pusher
from tasks.settings import PushSettings


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="_push_child.py", usage=__doc__)
    parser.add_argument("path", choices=("engine", "registry"))
    parser.add_argument("mode", choices=("single", "multi"))
    parser.add_argument("image_id")
    parser.add_argument("repository")
    parser.add_argument("tags", nargs="+")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--spool-dir", type=Path)
    args = parser.parse_args(argv)
    if args.mode == "single" and len(args.tags) != 1:
        parser.error("single takes exactly one tag")
    if args.path == "registry" and (args.cache_dir is None or args.spool_dir is None):
        parser.error("registry needs --cache-dir and --spool-dir")
    return args


def main(argv: list[str]) -> int:
    args = _parse(argv)
    tags = tuple(args.tags)
    settings = None
    if args.path == "registry":
        settings = PushSettings(
            via="registry", cache_dir=args.cache_dir, spool_dir=args.spool_dir
        )
    rss_before_kb = _peak_rss_kb()
    started = time.perf_counter()
    api = engine.connect()
    try:
        if args.mode == "single" and settings is None:
            (tag,) = tags
            engine.tag_image(api, args.image_id, args.repository, tag)
            result = engine.push_image(
                api, args.repository, tag, auth=None, deadline=engine.Deadline(None)
            )
            digests = [result.digest]
        else:  # the seam a flow step pushes through
            pusher = (
                EnginePusher(api) if settings is None else make_pusher(api, settings)
            )
            pushed = pusher.push(
                args.image_id,
                args.repository,
                tags,
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
    if settings is not None:
        report["concurrency"] = settings.concurrency
        report["compression_level"] = settings.compression_level
        report["compression_threads"] = settings.compression_threads
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
