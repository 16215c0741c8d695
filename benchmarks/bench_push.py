"""Push benchmark: freshflow's two push paths against docker CLI and skopeo.

    .venv/bin/python benchmarks/bench_push.py [--sizes 1,20,50] [--repeat 3]
                                              [--tags 3]

Starts local Distribution registries (one per tool and case group, so no
tool's push warms another's), builds a throwaway image per size and
repetition (MB of incompressible payload on the busybox test base, a fresh
marker each time) and pushes it with every tool, side by side, in three cases:

- cold: layers the repository has never seen (from the second round on, the
  registry holds the busybox base layer in another repository, and dockerd
  mounts it from there);
- warm: the same image again under a new tag, its layers already there;
- N tags: the image pushed under --tags tags to a registry without it.

The tools, each push in a process of its own:

- freshflow engine: the engine pushes each tag (`tasks.engine.push_image`,
  and for N tags `tasks.pushing.EnginePusher`), as `docker push` does;
- freshflow registry: `tasks.registry_push.RegistryPusher` (through
  `tasks.pushing.make_pusher`, FRESHFLOW_PUSH_VIA=registry): it exports the
  image from the engine, gzips the layers itself and uploads them through
  the registry's HTTP API, several at once, once for all tags.  Its layer
  cache lives in the benchmark's temporary directory, so the warm case uses
  what its own cold push of that image learnt, as a worker's cache would.
  The image's RepoDigests (left by the engine tools' pushes) are untagged
  before each of its pushes, or it would copy the image from another tool's
  registry instead of exporting it (see `Bench.forget_origins`);
- the `docker push` CLI (the same engine does the work);
- `skopeo copy` from `docker-daemon:` (the engine only exports the image;
  skopeo compresses and uploads it).

It prints the median wall time of --repeat runs and the client's peak RSS,
each with its ratio to docker CLI and to skopeo, plus the CPU time spent in
the client and in dockerd, again with both ratios.  Timing targets live
here, never in tests.  Everything it creates (registries, images, the layer
cache, temporary files) is removed at exit.  Installs skopeo and GNU time
from Debian when missing and run as root.  See benchmarks/README.md for how
to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

import docker
import docker.errors

from tests.support.images import build_test_image, ensure_base_image
from tests.support.registry import Registry, start_registry
from tests.support.services import ensure_docker

CHILD = Path(__file__).resolve().parent / "_push_child.py"
DOCKERD_PID_FILE = Path("/var/run/docker.pid")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024
PUSH_TIMEOUT = 300.0  # seconds; a push that takes longer is killed

ENGINE, REGISTRY = "freshflow engine", "freshflow registry"
DOCKER, SKOPEO = "docker CLI", "skopeo"
TOOLS = (ENGINE, REGISTRY, DOCKER, SKOPEO)  # the order of the table rows
FRESHFLOW = (ENGINE, REGISTRY)  # pushed by _push_child.py


class BenchError(RuntimeError):
    """A tool failed or pushed nothing; the message says which and why."""


# --- measuring one client process --------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One push by one tool, measured from outside its process(es)."""

    seconds: float  # the push: from connect() for freshflow, whole run for CLIs
    process_seconds: float  # client process(es) start to exit
    rss_kb: int  # peak RSS of the client process(es)
    client_cpu: float  # user + system CPU seconds of the client
    dockerd_cpu: float | None  # dockerd's user + system CPU seconds meanwhile
    rss_before_push_kb: int | None = None  # freshflow: peak after its imports


@dataclass(frozen=True)
class Measured:
    seconds: float
    rss_kb: int
    cpu: float
    dockerd_cpu: float | None
    stdout: bytes


def find_dockerd() -> int | None:
    """The pid of the running dockerd, or None when it cannot be read."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(DOCKERD_PID_FILE.read_text().strip())
        if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
            return pid
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "dockerd":
                return int(comm.parent.name)
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of `pid` so far, from /proc/<pid>/stat."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "(comm)"; utime and stime are fields 14 and 15 of the line.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(
    argv: Sequence[str],
    bench: Bench,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run `argv` to its end; its wall time, peak RSS and CPU, dockerd's CPU.

    The peak RSS comes from GNU time, which forks the command from its own
    small process.  `os.wait4` on a child of this (large) interpreter would
    report this interpreter's RSS instead: the kernel carries the parent's
    high-water mark into a forked child's peak.  The CPU seconds come from
    `os.wait4` on `time`, which includes the command it waited for.
    """
    rss_file = bench.workdir / "rss"
    timed = [bench.gnu_time, "-f", "%M", "-o", str(rss_file), *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        dockerd_before = cpu_seconds(bench.dockerd)
        started = time.perf_counter()
        process = subprocess.Popen(
            timed, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
        )
        watchdog = threading.Timer(PUSH_TIMEOUT, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - started
        dockerd_after = cpu_seconds(bench.dockerd)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip()[-2000:]
            msg = f"{' '.join(argv)} exited {process.returncode}: {tail}"
            raise BenchError(msg)
        out.seek(0)
        stdout = out.read()
    dockerd_cpu = None
    if dockerd_before is not None and dockerd_after is not None:
        dockerd_cpu = dockerd_after - dockerd_before
    return Measured(
        seconds=seconds,
        rss_kb=int(rss_file.read_text().split()[-1]),
        cpu=usage.ru_utime + usage.ru_stime,
        dockerd_cpu=dockerd_cpu,
        stdout=stdout,
    )


def sample_of(runs: Sequence[Measured]) -> Sample:
    """One sample from processes run one after the other for one push."""
    seconds = sum(run.seconds for run in runs)
    dockerd = [run.dockerd_cpu for run in runs]
    return Sample(
        seconds=seconds,
        process_seconds=seconds,
        rss_kb=max(run.rss_kb for run in runs),
        client_cpu=sum(run.cpu for run in runs),
        dockerd_cpu=None if None in dockerd else sum(d or 0 for d in dockerd),
    )


# --- the tools ---------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Push local image `image_id` to `registry/repository` under `tags`."""

    image_id: str
    registry: Registry
    repository: str  # without the registry host
    tags: tuple[str, ...]

    @property
    def target(self) -> str:
        return f"{self.registry.host}/{self.repository}"


@dataclass
class Bench:
    """What every push needs: the engine, the binaries, a work directory."""

    client: docker.DockerClient
    workdir: Path
    dockerd: int | None
    gnu_time: str
    docker_cli: str | None
    skopeo: str | None
    images: list[str] = field(default_factory=list)
    registry_settings: str | None = None  # as the registry child reported them

    @property
    def cache_dir(self) -> Path:
        """The registry path's layer cache: one for the whole run, as a worker's."""
        return self.workdir / "layer-cache"

    @property
    def spool_dir(self) -> Path:
        """Where the registry path spools the engine's export."""
        return self.workdir / "spool"

    def tag_locally(self, job: Job) -> None:
        """Name the image for the CLIs (not timed; freshflow tags it itself)."""
        for tag in job.tags:
            self.client.api.tag(job.image_id, job.target, tag, force=True)

    def forget_origins(self, image_id: str) -> None:
        """Untag the image's `repo@digest` names (not timed), keeping the image.

        Every engine push (docker CLI, freshflow engine) records one in the
        image's RepoDigests.  RegistryPusher takes such an image as one that
        came from a registry and copies its blobs from there, registry to
        registry, instead of exporting and compressing it: it would read
        another tool's registry.  A build step's image has no RepoDigests,
        so without them the registry path pushes the image as it would in a
        flow.  The engine's own layer reuse does not depend on these names.
        """
        api = self.client.api
        for name in api.inspect_image(image_id).get("RepoDigests") or []:
            api.remove_image(name, noprune=True)
        left = api.inspect_image(image_id).get("RepoDigests") or []
        if left:
            msg = f"cannot untag {left} of {image_id[:19]} before the registry push"
            raise BenchError(msg)

    def check_pushed(self, tool: str, job: Job) -> None:
        for tag in job.tags:
            if job.registry.manifest_digest(job.repository, tag) is None:
                msg = f"{tool} reported success but {job.target}:{tag} is missing"
                raise BenchError(msg)

    def push_engine(self, job: Job) -> Sample:
        return self.push_freshflow(ENGINE, job, "engine", [])

    def push_registry(self, job: Job) -> Sample:
        self.forget_origins(job.image_id)
        self.spool_dir.mkdir(exist_ok=True)
        dirs = ["--cache-dir", str(self.cache_dir), "--spool-dir", str(self.spool_dir)]
        return self.push_freshflow(REGISTRY, job, "registry", dirs)

    def push_freshflow(
        self, name: str, job: Job, path: str, options: list[str]
    ) -> Sample:
        """Run _push_child.py for push path `path` (engine or registry)."""
        mode = "single" if len(job.tags) == 1 else "multi"
        argv = [sys.executable, str(CHILD), path, mode, job.image_id, job.target]
        run = measure([*argv, *job.tags, *options], self)
        report = json.loads(run.stdout.decode().strip().splitlines()[-1])
        if len(report["digests"]) != len(job.tags):
            msg = f"{name} pushed {report['digests']} for tags {job.tags}"
            raise BenchError(msg)
        if "concurrency" in report:
            self.registry_settings = (
                f"{report['concurrency']} layers at once, "
                f"gzip level {report['compression_level']}, "
                f"{report.get('compression_threads', '?')} gzip threads"
            )
        return Sample(
            seconds=float(report["seconds"]),
            process_seconds=run.seconds,
            rss_kb=run.rss_kb,
            client_cpu=run.cpu,
            dockerd_cpu=run.dockerd_cpu,
            rss_before_push_kb=int(report["rss_before_push_kb"]),
        )

    def push_docker(self, job: Job) -> Sample:
        assert self.docker_cli is not None
        self.tag_locally(job)
        target = job.target
        if len(job.tags) == 1:
            argv = [self.docker_cli, "push", f"{target}:{job.tags[0]}"]
        else:  # the repository holds exactly these tags locally
            argv = [self.docker_cli, "push", "--all-tags", target]
        return sample_of([measure(argv, self)])

    def push_skopeo(self, job: Job) -> Sample:
        """`docker-daemon:` for the first tag, registry to registry for the rest.

        The rest copy only a manifest: what a skopeo user would do, rather
        than exporting the image from the engine once per tag.
        """
        assert self.skopeo is not None
        self.tag_locally(job)
        target = job.target
        first, *others = job.tags
        skopeo = [self.skopeo, "--insecure-policy", "copy", "--quiet"]
        tls = ["--dest-tls-verify=false"]
        env = {**os.environ, "TMPDIR": str(self.workdir)}  # its image tarball
        argvs = [
            [
                *skopeo,
                *tls,
                f"docker-daemon:{target}:{first}",
                f"docker://{target}:{first}",
            ]
        ]
        argvs += [
            [
                *skopeo,
                *tls,
                "--src-tls-verify=false",
                f"docker://{target}:{first}",
                f"docker://{target}:{tag}",
            ]
            for tag in others
        ]
        return sample_of([measure(argv, self, env) for argv in argvs])

    def tools(self) -> dict[str, Callable[[Job], Sample]]:
        tools: dict[str, Callable[[Job], Sample]] = {
            ENGINE: self.push_engine,
            REGISTRY: self.push_registry,
        }
        if self.docker_cli is not None:
            tools[DOCKER] = self.push_docker
        if self.skopeo is not None:
            tools[SKOPEO] = self.push_skopeo
        return tools

    def build(self, size_mb: int) -> str:
        """A new image: a fresh marker makes its layers new to every registry."""
        marker = f"freshflow-bench {uuid.uuid4().hex}"
        tag = f"freshflow-bench/src:{uuid.uuid4().hex[:12]}"
        image_id = build_test_image(
            self.client, tag, marker, payload_bytes=size_mb * MB
        )
        self.images.append(image_id)
        return image_id

    def remove_images(self) -> None:
        for image_id in self.images:
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.remove_image(image_id, force=True)
        self.images.clear()


# --- running the cases -------------------------------------------------------

Key = tuple[int, str, str]  # size MB, case, tool


def run_size(
    bench: Bench,
    registries: dict[tuple[str, str], Registry],
    size_mb: int,
    repeat: int,
    tags: int,
    results: dict[Key, list[Sample]],
) -> None:
    """--repeat rounds of every case for one size, on a new image each round.

    Every tool pushes that image to registries of its own (one for cold and
    warm, one for the tags case), so no tool's push warms another's: the
    engine, skopeo and freshflow's registry path only reuse layers within one
    registry (the registry path asks the target repository for each blob its
    layer cache knows, and uploads it when the answer is no).
    """
    tools = bench.tools()
    names = list(tools)
    cases = ("cold", "warm", f"{tags} tags")
    all_tags = tuple(f"t{i}" for i in range(tags))
    for rep in range(repeat):
        first = rep % len(names)  # a different tool goes first each time
        order = names[first:] + names[:first]
        started = time.perf_counter()
        image = bench.build(size_mb)
        built = time.perf_counter() - started
        repository = f"bench/{size_mb}mb-{uuid.uuid4().hex[:8]}"
        jobs = {
            "cold": {
                n: Job(image, registries[n, "one"], repository, ("cold",))
                for n in names
            },
            "warm": {
                n: Job(image, registries[n, "one"], repository, ("warm",))
                for n in names
            },
            cases[2]: {
                n: Job(image, registries[n, "tags"], repository, all_tags)
                for n in names
            },
        }
        line = [f"  {size_mb} MB run {rep + 1}/{repeat}: built in {built:.1f} s;"]
        for case in cases:  # warm right after cold: it needs the cold push
            samples = {n: push(bench, n, tools[n], jobs[case][n]) for n in order}
            for name, sample in samples.items():
                results.setdefault((size_mb, case, name), []).append(sample)
            pushed = "/".join(f"{samples[name].seconds:.2f}" for name in names)
            line.append(f"{case} {pushed}")
        bench.remove_images()
        print(" ".join(line), f"s ({'/'.join(names)})", flush=True)


def push(bench: Bench, name: str, tool: Callable[[Job], Sample], job: Job) -> Sample:
    sample = tool(job)
    bench.check_pushed(name, job)
    return sample


# --- the report --------------------------------------------------------------


def ratio(value: float, peer: float | None) -> str:
    return "-" if not peer else f"{value / peer:.2f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        left = cells[:3]  # size, case and tool read better left-aligned
        return "  ".join(
            [c.ljust(w) for c, w in zip(left, widths, strict=False)]
            + [c.rjust(w) for c, w in zip(cells[3:], widths[3:], strict=True)]
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _case_order(case: str) -> int:
    return {"cold": 0, "warm": 1}.get(case, 2)


def report(results: dict[Key, list[Sample]]) -> str:
    """The time and memory table, the CPU table and freshflow's overheads."""

    def median(key: Key, get: Callable[[Sample], float | None]) -> float | None:
        values = [get(sample) for sample in results.get(key, [])]
        known = [value for value in values if value is not None]
        return statistics.median(known) if known else None

    def peak_mb(key: Key) -> float | None:
        samples = results.get(key)
        return max(s.rss_kb for s in samples) / 1024 if samples else None

    def seconds(key: Key) -> float | None:
        return median(key, lambda s: s.seconds)

    def cpu_total(key: Key) -> float | None:
        """Client + dockerd CPU (medians): what one push costs the machine."""
        client_cpu = median(key, lambda s: s.client_cpu)
        dockerd_cpu = median(key, lambda s: s.dockerd_cpu)
        return None if client_cpu is None else client_cpu + (dockerd_cpu or 0.0)

    cases = sorted({case for _, case, _ in results}, key=_case_order)
    sizes = sorted({size for size, _, _ in results})
    keys = [
        (size, case, tool)
        for size in sizes
        for case in cases
        for tool in TOOLS
        if (size, case, tool) in results
    ]
    times, cpu, notes = [], [], []
    for key in keys:
        size, case, tool = key
        docker, skopeo = (size, case, DOCKER), (size, case, SKOPEO)
        push_s = seconds(key) or 0.0
        rss = peak_mb(key) or 0.0
        row = [f"{size} MB", case, tool, f"{push_s:.3f}"]
        row += [ratio(push_s, seconds(docker)), ratio(push_s, seconds(skopeo))]
        row += [f"{median(key, lambda s: s.process_seconds) or 0.0:.3f}"]
        row += [f"{rss:.1f}", ratio(rss, peak_mb(docker)), ratio(rss, peak_mb(skopeo))]
        times.append(row)
        client_cpu = median(key, lambda s: s.client_cpu) or 0.0
        dockerd_cpu = median(key, lambda s: s.dockerd_cpu)
        total = cpu_total(key) or 0.0
        dockerd = "-" if dockerd_cpu is None else f"{dockerd_cpu:.2f}"
        cpu_row = [*row[:3], f"{client_cpu:.2f}", dockerd, f"{total:.2f}"]
        cpu_row += [ratio(total, cpu_total(docker)), ratio(total, cpu_total(skopeo))]
        cpu.append(cpu_row)
        if tool in FRESHFLOW:
            startup = median(key, lambda s: s.process_seconds - s.seconds) or 0.0
            base = median(key, lambda s: s.rss_before_push_kb) or 0.0
            notes.append(
                f"{tool}, {size} MB {case}: start-up and imports {startup:.3f} s, "
                f"{base / 1024:.1f} MB before the push, "
                f"the push adds {rss - base / 1024:.1f} MB"
            )
    header = ["size", "case", "tool", "push s", "x docker", "x skopeo"]
    header += ["proc s", "RSS MB", "x docker", "x skopeo"]
    cpu_header = ["size", "case", "tool", "client CPU s", "dockerd CPU s", "total"]
    cpu_header += ["x docker", "x skopeo"]
    return "\n\n".join(
        [
            table(times, header),
            table(cpu, cpu_header),
            "freshflow child processes (not in push s):\n  " + "\n  ".join(notes),
        ]
    )


# --- setting up and tearing down ---------------------------------------------


def ensure_package(command: str, package: str) -> str | None:
    """`command`'s path, installing Debian `package` when missing and root."""
    found = shutil.which(command)
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            f"{command} is not installed: run `apt-get install -y {package}` as root",
            file=sys.stderr,
        )
        return None
    print(f"installing {package} (apt-get install -y {package}) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    done = subprocess.run(install, env=env, capture_output=True, check=False)
    if done.returncode != 0:  # the package lists may be missing or stale
        update = ["apt-get", "update"]
        subprocess.run(update, env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-1000:]
        print(f"installing {package} failed:\n{tail}", file=sys.stderr)
        return None
    return shutil.which(command)


def version_of(argv: Sequence[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, check=False
        )
        lines = (done.stdout or done.stderr).strip().splitlines()
        if done.returncode == 0 and lines:
            return lines[0].strip()
    return "unknown"


def load_average() -> str:
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def describe(bench: Bench, registries: list[Registry]) -> str:
    engine = bench.client.version()
    lines = [
        f"date:      {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine:   {os.cpu_count()} CPUs, {platform.platform()}",
        f"load:      {load_average()} (1, 5, 15 min) at the start",
        f"python:    {platform.python_version()}",
        f"engine:    Docker Engine {engine.get('Version')} (API {engine.get('ApiVersion')})",
        f"registry:  {version_of(['docker-registry', '--version'])}, "
        f"{len(registries)} of them (one per tool and case group)",
    ]
    if bench.docker_cli is None:
        lines.append("docker:    no docker CLI on PATH; going on without it")
    else:
        cli = version_of(
            [bench.docker_cli, "version", "--format", "{{.Client.Version}}"]
        )
        lines.append(f"docker:    {bench.docker_cli} {cli}")
    if bench.skopeo is not None:
        lines.append(f"skopeo:    {version_of([bench.skopeo, '--version'])}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--sizes",
        default="1,20,50",
        help="image payload sizes in MB, comma-separated (default 1,20,50)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement (default 3)"
    )
    parser.add_argument(
        "--tags", type=int, default=3, help="tags in the multi-tag case (default 3)"
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--sizes must be whole MB, comma-separated, not {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 0:
        parser.error("--sizes needs at least one size, none negative")
    if args.repeat < 1 or args.tags < 2:
        parser.error("--repeat must be at least 1 and --tags at least 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = ensure_docker()
    ensure_base_image(client)
    gnu_time = ensure_package("time", "time")  # GNU time: the peak RSS
    if gnu_time is None or "GNU" not in version_of([gnu_time, "--version"]):
        print("bench_push needs GNU time (Debian package `time`)", file=sys.stderr)
        return 1
    docker_cli = shutil.which("docker")
    skopeo = ensure_package("skopeo", "skopeo")
    if skopeo is None:
        print("going on without skopeo", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="freshflow-bench-"))
    bench = Bench(client, workdir, find_dockerd(), gnu_time, docker_cli, skopeo)
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            registries = {
                (tool, group): stack.enter_context(
                    start_registry(workdir / f"registry-{i}-{group}")
                )
                for i, tool in enumerate(bench.tools())
                for group in ("one", "tags")
            }
            print(describe(bench, list(registries.values())), flush=True)
            results: dict[Key, list[Sample]] = {}
            for size in args.sizes:
                run_size(bench, registries, size, args.repeat, args.tags, results)
        print()
        print(f"median of {args.repeat} runs; RSS is the peak over the runs")
        print(report(results))
        if bench.registry_settings is not None:
            print(f"freshflow registry: {bench.registry_settings}")
        print(f"\ntotal {time.monotonic() - started:.0f} s, load {load_average()}")
    except BenchError as exc:
        print(f"bench_push: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.remove_images()
        shutil.rmtree(workdir, ignore_errors=True)
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
