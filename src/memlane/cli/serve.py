"""``memlane serve`` and ``memlane keys ...``."""

from __future__ import annotations

import inspect
import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

import click

from memlane.cli.common import invoked_as, user_errors
from memlane.errors import MemlaneError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def key_store(ctx: click.Context) -> Any:
    """The keys file the config's ``server.keys_path`` names (default MEMLANE_HOME/keys.db)."""
    from memlane.config import load_config
    from memlane.server.keys import KeyStore

    return KeyStore(load_config((ctx.obj or {}).get("config_path")).server.keys_file())


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening before the banner says where it serves (a taken
    port is one clear line, not an error after start-up); uvicorn serves on it as it is."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # the protocol named, not left 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted
    # sockets whose proto is IPPROTO_TCP; without it every response waited ~40 ms for the
    # client's delayed ACK (a keep-alive client got 23 requests/s)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another memlane serve? pick --port)") from None
    sock.set_inheritable(True)  # worker processes serve on it too
    return sock


def check_store_opens(open_store: Callable[[], Any]) -> None:
    """Open the store before any banner, so an unreachable database is reported as one line
    with a non-zero exit instead of a traceback from inside the server."""
    try:
        open_store()
    except MemlaneError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc.message}") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="MEMLANE_SERVE_HOST")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), envvar="MEMLANE_SERVE_PORT",
              help="TCP port, 0 to 65535 (0: any free port)")
@click.option("--log-level", default="info", show_default=True)
@click.option("--workers", "-w", default=1, show_default=True, type=click.IntRange(1, 64), envvar="MEMLANE_SERVE_WORKERS",
              help="server processes on one port, all on the same store (SQLite WAL and its scope lock files, or PostgreSQL)")
@click.pass_context
@user_errors
def serve(ctx: click.Context, host: str, port: int, log_level: str, workers: int) -> None:
    """Run the OpenAI-compatible proxy with memory, and the memory REST API.

    \b
    Point any OpenAI SDK at it:  OpenAI(base_url="http://127.0.0.1:8765/v1", api_key=KEY)
    and pass the scope with extra_body={"user_id": "alice"} (or the X-Memlane-User-Id header).
    """
    from memlane.server.app import create_app

    keys = key_store(ctx)
    if not keys.any_active() and not is_loopback(host):
        raise click.ClickException(
            f"refusing to serve on {host} without API keys: anyone who can reach it could read every memory. "
            "Create a key first (memlane keys create --project NAME) or serve on 127.0.0.1."
        )
    config_path = (ctx.obj or {}).get("config_path")
    require_keys = not is_loopback(host)
    from memlane.config import load_config
    from memlane.openai_compat import NO_CHAT_ENDPOINT, chat_endpoint

    config = load_config(config_path)
    learners = None
    if config.server.learner == "process":  # learning beside the server: started once, whatever --workers
        from memlane.server.learner_supervisor import LearnerSupervisor, why_not_a_process

        why_not = why_not_a_process(config)
        if why_not is None:
            learners = LearnerSupervisor(config, config_path, log_level=log_level)
        else:
            click.echo(f"  learning in the server's own threads: {why_not} (server.learner: process needs a shared store)", err=True)
    try:
        learner_dir = learners.directory if learners is not None else None
        app: Any = None
        if workers == 1:  # the server's own default project opens its store now; its start-up reuses it
            from memlane.server.keys import DEFAULT_PROJECT

            app = create_app(config_path, keys=keys, require_keys=require_keys, bind_host=host, learner_dir=learner_dir,
                             own_process=True)
            check_store_opens(lambda: app.state.projects.engine(DEFAULT_PROJECT))
        else:  # each worker opens its own; the parent only checks that it can
            from memlane import Memory

            check_store_opens(lambda: Memory(config).close())
        sock = listening_socket(host, port)  # the store is open; now the port, then the banner
        port = sock.getsockname()[1]  # --port 0: the free port the system chose
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"memlane {'' if keys.any_active() else '(no API keys: open to local callers only) '}serving on http://{shown}:{port}/v1")
        click.echo(f"  inspector: http://{shown}:{port}/ui   (what memlane knows, in a browser)")
        if not keys.any_active():
            click.echo(f"  to require keys: {invoked_as()} keys create   (then send Authorization: Bearer <key>)")
        endpoint = chat_endpoint(config.upstream, config.llm.config)
        click.echo(f"  chats go to {endpoint[0] or 'https://api.openai.com/v1'}" if endpoint else f"  memory REST is ready; {NO_CHAT_ENDPOINT}")
        if learners is not None:
            click.echo(f"  learning in {config.server.learner_processes} learner process{'es' if config.server.learner_processes > 1 else ''}"
                       " beside the server (server.learner)")
        if learners is not None:
            learners.start()
            stop_on_signals()
        serve_until_stopped(app, sock, host, port, log_level, workers, config_path, require_keys, learner_dir)
    except Stopped:
        pass
    finally:
        if learners is not None:
            learners.stop()


class Stopped(Exception):
    """SIGTERM or SIGINT arrived again once the server was done with it (uvicorn re-raises it)."""


def stop_on_signals() -> None:
    """After a graceful shutdown uvicorn raises the signal that asked for it again; with the
    default handler that would end this process before it stops its learner processes."""
    import signal

    def stopped(*_: Any) -> None:
        raise Stopped()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopped)


def serve_until_stopped(app: Any, sock: socket.socket, host: str, port: int, log_level: str, workers: int,
                        config_path: str | None, require_keys: bool, learner_dir: Path | None) -> None:
    import uvicorn

    if app is not None:
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30))
        server.run(sockets=[sock])
        if not server.started:
            raise click.ClickException("the server did not start (see the log above)")
        return
    # several processes: each builds its own app from the environment (uvicorn's factory mode)
    # and serves on the socket bound here
    from uvicorn.supervisors import Multiprocess

    if config_path:
        os.environ["MEMLANE_CONFIG"] = str(Path(config_path).resolve())
    os.environ["MEMLANE_REQUIRE_KEYS"] = "1" if require_keys else "0"
    os.environ["MEMLANE_BIND_HOST"] = host
    from memlane.server.learner_files import DIR_ENV

    if learner_dir is not None:
        os.environ[DIR_ENV] = str(learner_dir)
    else:
        os.environ.pop(DIR_ENV, None)
    multi = uvicorn.Config("memlane.server.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                           log_level=log_level, timeout_graceful_shutdown=30)
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn took the server's run
        Multiprocess(multi, target=uvicorn.Server(multi).run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(multi, sockets=[sock]).run()


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="the folder for the status files a server reads (default: a temporary one, removed at exit)")
@click.option("--index", default=0, show_default=True, type=click.IntRange(0, 31), help="this learner's number among several")
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
@user_errors
def learn(ctx: click.Context, directory: str | None, index: int, log_level: str) -> None:
    """Learn from the outbox of every project, in this process, until stopped (Ctrl-C).

    \b
    What `memlane serve` runs beside itself (server.learner: process). By hand: to drain
    the outboxes with no server running, or to learn on another machine from a shared
    PostgreSQL store (several learners share the outboxes through their leases).
    """
    import logging
    import shutil
    import signal
    import tempfile
    import threading

    from memlane.config import load_config
    from memlane.server.learner_process import run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="memlane-learn-"))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"learning every project's outbox (status in {folder}); Ctrl-C stops", err=True)
    try:
        run(load_config((ctx.obj or {}).get("config_path")), folder, index, stop=stop)
    finally:
        if not directory:
            shutil.rmtree(folder, ignore_errors=True)


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (each belongs to a project).

    \b
    Examples:
      memlane keys create --project acme
      memlane keys list
      memlane keys revoke key_0123abcd
    """


@keys.command("create")
@click.option("--project", "-p", default="default", show_default=True,
              help="the project the key belongs to; `default` reaches the memories the server kept before any key")
@click.pass_context
@user_errors
def create(ctx: click.Context, project: str) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    from memlane.config import load_config
    from memlane.server.projects import describe_storage

    key, info = key_store(ctx).create(project)
    click.echo(key)
    where = describe_storage(load_config((ctx.obj or {}).get("config_path")), project)
    click.echo(f"(id {info.id}, project {info.project}: its memories are in {where}; store the key now: it is not shown again)", err=True)


@keys.command("list")
@click.pass_context
@user_errors
def list_keys(ctx: click.Context) -> None:
    """List keys (never the keys themselves)."""
    for info in key_store(ctx).list():
        state = "revoked" if info.revoked_at else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.created_at))
        click.echo(f"{info.id}  {info.project:20}  {info.prefix}...  {created}  {state}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
@user_errors
def revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by its id."""
    if not key_store(ctx).revoke(key_id):
        raise click.ClickException(f"no active key with id {key_id!r}")
    click.echo(f"revoked {key_id}")
