"""Page load: wrk with a generated Lua script, or the Python fallback (``bench.pyload``).

Each request picks one of the given (path, headers) uniformly at random.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MIN_TIMEOUT_SECONDS = 30.0
RESULT_MARK = "BENCH-RESULT "

LUA = """\
local specs = {
%s
}
local requests = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919)
end

function init(args)
  math.randomseed(os.time() + seed)
  for i, spec in ipairs(specs) do
    requests[i] = wrk.format("GET", spec[1], spec[2])
  end
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %%d, "duration_us": %%d, "errors": %%d, "status_errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Spec:
    """One request the load may send."""

    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    status_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def problems(self) -> str:
        """'' or what went wrong (socket errors/timeouts, answers other than 2xx/3xx)."""
        parts = []
        if self.errors:
            parts.append(f"{self.errors} socket errors/timeouts")
        if self.status_errors:
            parts.append(f"{self.status_errors} non-2xx/3xx answers")
        return ", ".join(parts)


@dataclass(frozen=True)
class LoadSettings:
    generator: str  # "wrk" or "python"
    threads: int
    connections: int
    duration: float


def pick_generator(requested: str) -> str:
    """``wrk`` when asked for or (``auto``) when installed, else ``python``."""
    if requested == "wrk" and shutil.which("wrk") is None:
        raise RuntimeError("--loadgen wrk: wrk is not installed")
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return requested


def run_load(port: int, specs: list[Spec], settings: LoadSettings) -> LoadResult:
    if settings.generator == "wrk":
        return _run_wrk(port, specs, settings)
    from bench.pyload import run_python_load

    return run_python_load(port, [(spec.path, spec.headers) for spec in specs], settings)


def _lua_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def lua_script(specs: list[Spec]) -> str:
    rows = []
    for spec in specs:
        headers = ", ".join(
            f"[{_lua_string(name)}] = {_lua_string(value)}" for name, value in spec.headers.items()
        )
        rows.append(f"  {{{_lua_string(spec.path)}, {{{headers}}}}},")
    return LUA % ("\n".join(rows), RESULT_MARK)


def _run_wrk(port: int, specs: list[Spec], settings: LoadSettings) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as temp:
        script = Path(temp) / "load.lua"
        script.write_text(lua_script(specs))
        argv = ["wrk", f"-t{settings.threads}", f"-c{settings.connections}"]
        timeout = max(MIN_TIMEOUT_SECONDS, 2 * settings.duration)
        argv += [f"-d{settings.duration:g}s", f"--timeout={timeout:g}s"]
        argv += ["-s", str(script), f"http://127.0.0.1:{port}/"]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line.removeprefix(RESULT_MARK))
            return LoadResult(
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                errors=data["errors"],
                status_errors=data["status_errors"],
            )
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
