"""The shopping list in a browser: peers on 127.0.0.1, each serving the page and its client API.

``make web`` (or ``.venv/bin/python examples/web/run.py``) starts a relay and two devices
(``--devices 3`` adds a tablet), each a shoal peer with its own SQLite file and its own
client API (:mod:`shoal.web`) serving the page in ``static/``. It prints one URL per peer:
open two of them side by side. Each URL carries that peer's token after ``#`` (the fragment
never leaves the browser; the page keeps it in the tab's session storage).

Each device dials the relay through a small TCP proxy on 127.0.0.1, so that the page's
"Go offline" button can cut that device's link for real (the demo's own route
``/demo/network``, beside the client API and behind the same token): edit on both devices,
go back online, and watch them converge; edit the note on both while one is offline to see
the siblings and resolve them.

The data, all under the prefix ``shop:`` (the page subscribes to it):

* ``shop:lists``: an ORMap from list id to an LWW register holding the list's title;
* ``shop:list:ID:items``: an ORMap from item id to an LWW register holding the item's text;
* ``shop:list:ID:done``: an ORSet of the ticked item ids (a tick and an untick made at
  once: the tick wins);
* ``shop:list:ID:note``: an MVRegister holding the note (concurrent edits are siblings).

Ctrl-C (or SIGTERM) stops everything cleanly. ``--dir DIR`` keeps the databases there
(``shoal inspect --db DIR/phone.db`` shows them); by default they live in a temporary folder
removed at the end.
"""

from __future__ import annotations

import signal
import sys

if __name__ == "__main__":  # Ctrl-C while the modules below load (a second or two): stop quietly
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

import argparse
import asyncio
import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

try:
    from shoal.web import ClientAPI, make_client_app, start_client_app
except ImportError as exc:  # without aiohttp: one line naming the web extra
    sys.exit(f"run.py: {exc}")

from aiohttp import web

from shoal import Peer, TransportConfig
from shoal.faults.proxy import LinkState, Proxy

__all__ = ["STATIC", "Device", "main", "start"]

STATIC = Path(__file__).resolve().parent / "static"
SECRET = b"shoal web example"  # loopback only; a real group uses its own secret
DEVICES = ("phone", "laptop", "tablet")
# Fast timers: every peer is on this machine, so a lost link is found and redialled at once.
ENGINE: dict[str, Any] = {"anti_entropy_interval": 0.5, "write_timeout": 2.0}
LINKS = TransportConfig(backoff_base=0.05, backoff_cap=0.5, ping_interval=1.0, ping_timeout=2.0)


@dataclass
class Device:
    """One peer of the example: its name, peer, client API and token; ``proxy`` is the
    link to the relay that "Go offline" cuts (None for the relay itself)."""

    name: str
    peer: Peer
    token: str
    proxy: Proxy | None = None
    api: ClientAPI | None = None
    names: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The page's address, with the token in the fragment."""
        assert self.api is not None
        return f"{self.api.url}/?device={self.name}#token={self.token}"

    @property
    def online(self) -> bool:
        return self.proxy is None or self.proxy.state is LinkState.OPEN

    def go(self, online: bool) -> None:
        if self.proxy is None:
            raise ValueError("the relay has no link to cut")
        if online:
            self.proxy.heal()
        else:
            self.proxy.cut()


def _network_routes(app: web.Application, device: Device) -> None:
    """``GET /demo/network``: can this device go offline, is it online, who is who;
    ``POST /demo/network`` with ``{"online": bool}``: cut or restore its link. Not part of
    the client API: the example adds them, behind the same token."""

    def state() -> dict[str, Any]:
        return {
            "device": device.name,
            "available": device.proxy is not None,
            "online": device.online,
            "names": device.names,
        }

    async def get(request: web.Request) -> web.Response:
        return web.json_response(state())

    async def post(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:  # not JSON, or not UTF-8 text: the same refusal as a wrong shape
            body = None
        online = body.get("online") if isinstance(body, dict) else None
        if not isinstance(online, bool) or device.proxy is None:
            message = 'send {"online": true|false} to a device\'s page (the relay has no link)'
            error = {"code": "bad_request", "message": message}
            return web.json_response({"error": error}, status=400)
        device.go(online)
        return web.json_response(state())

    app.router.add_get("/demo/network", get)
    app.router.add_post("/demo/network", post)


@contextlib.asynccontextmanager
async def start(
    folder: Path, devices: int = 2, *, host: str = "127.0.0.1", port: int = 0, seed: int = 7
) -> AsyncIterator[list[Device]]:
    """Open the relay and ``devices`` devices in ``folder``, serve their pages; yields them,
    the relay first. Ports: ``port`` and the next ones, or the OS's choice with 0."""
    if not 1 <= devices <= len(DEVICES):
        raise ValueError(f"devices must be 1 to {len(DEVICES)}, got {devices}")
    async with contextlib.AsyncExitStack() as stack:
        opts: dict[str, Any] = {"secret": SECRET, "transport": LINKS, "seed": seed, **ENGINE}
        relay_peer = await Peer.open(folder / "relay.db", listen="127.0.0.1:0", relay=True, **opts)
        stack.push_async_callback(relay_peer.aclose)
        crew = [Device("relay", relay_peer, secrets.token_urlsafe(24))]
        assert relay_peer.url is not None
        target = ("127.0.0.1", int(relay_peer.url.rsplit(":", 1)[1]))
        for name in DEVICES[:devices]:
            proxy = Proxy(name, seed, target=target)
            await proxy.start()
            stack.push_async_callback(proxy.aclose)
            peer = await Peer.open(folder / f"{name}.db", peers=[proxy.url], **opts)
            stack.push_async_callback(peer.aclose)
            crew.append(Device(name, peer, secrets.token_urlsafe(24), proxy))
        names = {d.peer.replica_id: d.name for d in crew}
        for i, device in enumerate(crew):
            device.names = names
            app = make_client_app(device.peer, device.token, static_dir=STATIC)
            _network_routes(app, device)
            device.api = await start_client_app(app, host, port + i if port else 0)
            stack.push_async_callback(device.api.aclose)  # closed before its peer
        yield crew


async def _run(args: argparse.Namespace) -> int:
    # Ctrl-C (or SIGTERM) while the peers open cancels the opening, which closes what is
    # open already; once they serve, it ends the wait below. Either way: a quiet stop.
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    stop = asyncio.Event()
    serving = False

    def on_signal() -> None:
        if serving:
            stop.set()
        elif not stop.is_set():
            stop.set()
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        with contextlib.ExitStack() as cleanup:
            if args.dir is None:
                scratch = tempfile.TemporaryDirectory(prefix="shoal-web-")
                folder = Path(cleanup.enter_context(scratch))
            else:
                folder = args.dir
                folder.mkdir(parents=True, exist_ok=True)
            async with start(folder, args.devices, port=args.port) as crew:
                serving = True
                print(f"shoal web example: {len(crew)} peers on 127.0.0.1 (databases in {folder})")
                for device in crew:
                    print(f"  {device.name:7} {device.url}")
                print("Open two of these side by side. Ctrl-C stops.", flush=True)
                await stop.wait()
                print("stopping", flush=True)
    except asyncio.CancelledError:
        if serving or not stop.is_set():
            raise  # not our Ctrl-C
        task.uncancel()
        print("stopping", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run.py", description="The shoal shopping list in a browser, on 127.0.0.1."
    )
    parser.add_argument(
        "--devices", type=int, default=2, choices=range(1, len(DEVICES) + 1),
        help="devices beside the relay (default 2: a phone and a laptop)",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, help="keep the databases in this folder")
    parser.add_argument(
        "--port", type=int, default=0,
        help="the relay's page on this port, the devices' on the next ones (default: any free)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535 - len(DEVICES):
        parser.error(f"--port must be 0 to {65535 - len(DEVICES)}")
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
