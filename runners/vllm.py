"""``vllm/PATH_OR_ID``: start ``vllm serve`` for the run and evaluate through it.

The fast path for local models: vLLM batches continuously, shares prompt prefixes and
pages its KV cache, where ``hf/`` runs plain ``model.generate``. This runner owns the
server's life: it starts ``vllm serve MODEL --host 127.0.0.1 --port P`` on a free port
(its output goes to a log file), waits for ``GET /health``, sends every request through
:class:`runners.openai_api.OpenAIRunner` (``thinking_style=vllm``: the budget travels as
``thinking_token_budget``), and stops the server in ``aclose()``. Interrupted runs
are covered too: the server runs in its own process group, which an ``atexit`` hook
kills (Ctrl-C), and on Linux the server also gets SIGTERM if this process dies.

For a server that is already running (other GPUs, other nodes, SGLang), use
``openai/MODEL --base-url http://host:port/v1`` instead.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from evals.runner import ConfigError, Request, Response, RunnerError
from runners.openai_api import OpenAIRunner

OWN_OPTIONS = ("serve_args", "startup_timeout", "vllm_bin", "reasoning_parser", "port",
               "stop_timeout", "tool_parser")
PASSED_ON = ("thinking_style", "timeout", "transport")  # to the OpenAI-compatible client
INSTALL_HINT = ("vllm is not installed: pip install 'evals[vllm]' (or pip install vllm) on a "
                "machine with a GPU, or pass -M vllm_bin=/path/to/vllm; for a server that is "
                "already running use openai/MODEL --base-url http://HOST:PORT/v1")


def make_runner(name: str, **options: Any) -> "VLLMRunner":
    if not name:
        raise ConfigError("model spec 'vllm/' needs a local path or hub id, "
                          "e.g. vllm/Qwen/Qwen3-8B")
    if "base_url" in options:
        raise ConfigError("vllm/ starts its own server; for a running one use "
                          "openai/MODEL --base-url URL")
    unknown = [k for k in options if k not in OWN_OPTIONS + PASSED_ON]
    if unknown:
        raise ConfigError(f"vllm runner has no option {unknown[0]!r} "
                          f"(known: {', '.join(OWN_OPTIONS + PASSED_ON)})")
    command = vllm_command(options.get("vllm_bin"))
    try:
        config = ServeConfig(
            model=name, command=command,
            extra_args=shlex.split(str(options.get("serve_args") or "")),
            startup_timeout=float(options.get("startup_timeout", 1200)),
            stop_timeout=float(options.get("stop_timeout", 30)),
            port=int(options["port"]) if options.get("port") else None,
            reasoning_parser=options.get("reasoning_parser"),
            tool_parser=tool_parser(name, options.get("tool_parser")))
    except ValueError as e:
        raise ConfigError(f"vllm runner: bad option value: {e}") from None
    server = VLLMServer(config)
    server.start()
    try:
        client_options = {k: options[k] for k in PASSED_ON if k in options}
        client_options.setdefault("thinking_style", "vllm")
        # api_key: never send the user's OPENAI_API_KEY to a server that needs none.
        client = OpenAIRunner(name, base_url=server.base_url, api_key="EMPTY", **client_options)
    except BaseException:
        server.stop()
        raise
    return VLLMRunner(f"vllm/{name}", client, server)


def vllm_command(binary: str | None) -> list[str]:
    """The ``vllm`` executable on PATH, else the module of an installed vllm package."""
    if binary:
        found = shutil.which(binary)
        if not found:
            raise ConfigError(f"-M vllm_bin={binary}: no such executable")
        return [found]
    found = shutil.which("vllm")
    if found:
        return [found]
    if importlib.util.find_spec("vllm") is not None:  # installed, but its script not on PATH
        return [sys.executable, "-m", "vllm.entrypoints.cli.main"]
    raise ConfigError(INSTALL_HINT)


def tool_parser(model: str, option: Any) -> ToolParser:
    """``-M tool_parser``: vLLM's ``--tool-call-parser`` name, ``none``, or ``auto`` (the
    default): the format the model's chat template spells (runners/tool_text.py:
    hermes, llama3_json, mistral, qwen3_coder or glm45, each vLLM's name for its
    parser), where the template can be read here (a local directory, or the hub cache)
    before the server starts; vLLM itself never picks a parser."""
    value = str(option or "auto")
    if value == "none":
        return ToolParser(None, False)
    if value != "auto":
        return ToolParser(value, True)
    from runners.tool_text import template_format

    source = local_chat_template(model)
    return ToolParser(template_format(source) if source else None, False)


def local_chat_template(model: str) -> str | None:
    """The chat template of ``model`` from files already on this machine, or None."""
    import json

    def read(name: str) -> str | None:
        path: Any = os.path.join(os.path.expanduser(model), name)
        if not os.path.isdir(os.path.expanduser(model)):
            try:
                from huggingface_hub import try_to_load_from_cache

                path = try_to_load_from_cache(model, name)
            except Exception:  # no huggingface_hub, or not a hub id: nothing to read
                return None
        if not isinstance(path, str) or not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()

    source = read("chat_template.jinja")
    if source:
        return source
    config = read("tokenizer_config.json")
    try:
        template = json.loads(config).get("chat_template") if config else None
    except ValueError:
        return None
    if isinstance(template, list):  # named templates: [{"name", "template"}, ...]
        template = "\n".join(str(t.get("template", "")) for t in template if isinstance(t, dict))
    return template if isinstance(template, str) else None


@dataclass(frozen=True)
class ToolParser:
    name: str | None  # vLLM's --tool-call-parser; None: tool calls are not parsed
    forced: bool  # given with -M tool_parser (part of the cache identity), not detected


@dataclass
class ServeConfig:
    model: str
    command: list[str]
    extra_args: list[str]
    startup_timeout: float = 1200.0  # a cold start downloads and compiles: minutes
    stop_timeout: float = 30.0  # SIGTERM, then SIGKILL after this long
    port: int | None = None
    reasoning_parser: str | None = None
    tool_parser: ToolParser = ToolParser(None, False)
    host: str = "127.0.0.1"  # never exposed beyond this machine

    @property
    def parses_tools(self) -> bool:
        return self.tool_parser.name is not None or "--tool-call-parser" in self.extra_args


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn giving the server SIGTERM when the evals process dies (Linux), even
    by SIGKILL, where atexit hooks never run; vLLM's own workers follow their parent.

    libc is loaded here, in the parent: the child between fork and exec may only make
    the one system call (another thread may hold the loader's lock at fork time)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class VLLMServer:
    """One ``vllm serve`` process group: start, wait for health, stop."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.port = config.port or free_port(config.host)
        self.process: subprocess.Popen | None = None
        fd, path = tempfile.mkstemp(prefix="evals-vllm-", suffix=".log")
        os.close(fd)  # reopened by start(); kept after the run for post-mortems
        self.log_path = Path(path)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}/v1"

    def command(self) -> list[str]:
        c = self.config
        cmd = [*c.command, "serve", c.model, "--host", c.host, "--port", str(self.port)]
        if c.reasoning_parser:
            cmd += ["--reasoning-parser", c.reasoning_parser]
        if c.tool_parser.name and "--tool-call-parser" not in c.extra_args:
            cmd += ["--enable-auto-tool-choice", "--tool-call-parser", c.tool_parser.name]
        return cmd + c.extra_args

    def start(self) -> None:
        """Spawn and block until /health answers 200; ConfigError with the log's tail if not."""
        cmd = self.command()
        print(f"starting {shlex.join(cmd)} (log: {self.log_path})", file=sys.stderr, flush=True)
        with open(self.log_path, "wb") as log:
            # A session of its own: Ctrl-C in the terminal reaches evals only, which then
            # stops the server in order; killpg reaches vLLM's engine and worker processes.
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_parent_death_signal())  # noqa: PLW1509
        atexit.register(self.stop)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        url = f"http://{self.config.host}:{self.port}/health"
        deadline = time.monotonic() + self.config.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise ConfigError(f"vllm serve exited with code {code} during start-up; "
                                  f"last lines of {self.log_path}:\n{tail(self.log_path)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"vllm serve did not answer {url} within "
                                  f"{self.config.startup_timeout:g}s (-M startup_timeout=...); "
                                  f"last lines of {self.log_path}:\n{tail(self.log_path)}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after stop_timeout. Idempotent."""
        process, self.process = self.process, None
        atexit.unregister(self.stop)
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(self.config.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(process.pid, signal.SIGKILL)  # workers that outlived their parent
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the group id is the server's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


class VLLMRunner:
    """``generate`` through the OpenAI-compatible client; ``aclose`` stops the server."""

    enforces_timeout = True  # the OpenAI client times out each call

    def __init__(self, spec: str, client: OpenAIRunner, server: VLLMServer):
        self.model = spec
        self.client = client
        self.server = server
        # not the client's identity: the server's port changes with every start
        self.cache_identity = (f"{spec}|{server.config.extra_args}|{client.thinking_style}|"
                               f"{server.config.reasoning_parser}")
        if server.config.tool_parser.forced:  # a detected one follows from the model
            self.cache_identity += f"|{server.config.tool_parser.name}"

    def __repr__(self) -> str:
        return f"VLLMRunner({self.model!r}, base_url={self.server.base_url!r})"

    async def generate(self, request: Request) -> Response:
        if request.tools and request.tool_choice != "none" and not self.server.config.parses_tools:
            # vLLM would answer 400 ("auto" tool choice requires --tool-call-parser)
            raise RunnerError(
                f"{self.model}: no tool-call parser for this model's template (none read from "
                "a local copy); set -M tool_parser=NAME (vLLM's --tool-call-parser: hermes for "
                "Qwen2.5/Qwen3/Hermes, qwen3_coder for Qwen3-Coder, glm45 for GLM-4.5/4.6, "
                "llama3_json for Llama 3.1-3.3, mistral), or run the agent with "
                "-T agent_protocol=text")
        return await self.client.generate(request)

    async def aclose(self) -> None:
        import asyncio

        try:
            await self.client.aclose()
        finally:
            await asyncio.to_thread(self.server.stop)
