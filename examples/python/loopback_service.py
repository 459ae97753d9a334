#!/usr/bin/env python3
"""A vendor bulk loopback as a usbfn service, in Python 3 with the standard library only.

The device is examples/devices/loopback.toml: what the host writes to the bulk OUT endpoint it
reads back from the bulk IN endpoint, in order. Setup packets forwarded to the service (there
are no vendor requests) are stalled. The IOCTL framing comes from gadget_zero_service.py next
to this file (docs/ipc.md).

    usbfn config check examples/devices/loopback.toml
    usbfn daemon --config examples/devices/loopback.toml --runtime-dir /tmp/usbfn &
    python3 examples/python/loopback_service.py --runtime-dir /tmp/usbfn
    usbfn probe
"""

import argparse
import asyncio
import os
import struct
import sys

from gadget_zero_service import (
    ACTIVATE_USB_BUS,
    BUS_EVENT_NOTIFICATION,
    CONFIGURED,
    DETACH,
    GET_CLASS_INFO,
    RESET,
    SET_INTERFACE,
    SET_PIPE_STATE,
    SETUP_PACKET,
    STATUS_SUCCESS,
    TRANSFER_IN,
    TRANSFER_OUT,
    UNCONFIGURED,
    Connection,
    Gone,
    bulk_pipes,
    check,
    default_runtime_dir,
    pipe,
)

GUID = "{1E5B2B0A-8B7E-4C3A-9D2F-6C0A1B2C3D41}"  # loopback.toml's guid, canonical (upper case)


class Loopback:
    def __init__(self, conn):
        self.conn = conn
        self.generation, self.speed = 0, 2
        self.task = None

    async def run(self):
        status, _, self.class_info = await self.conn.ioctl(GET_CLASS_INFO, output_length=748)
        check(status, "GET_CLASS_INFO")
        check((await self.conn.ioctl(ACTIVATE_USB_BUS))[0], "ACTIVATE_USB_BUS")
        print("loopback_service.py: bus activated", flush=True)
        while True:
            status, _, note = await self.conn.ioctl(BUS_EVENT_NOTIFICATION, output_length=12)
            check(status, "BUS_EVENT_NOTIFICATION")
            event = struct.unpack_from("<I", note)[0]
            if event == RESET:
                self.speed = struct.unpack_from("<I", note, 4)[0]
                self.generation += 1
            elif event in (CONFIGURED, SET_INTERFACE):
                self.generation += 1
                self.task = asyncio.ensure_future(self.loop(self.generation))
            elif event in (UNCONFIGURED, DETACH):
                self.generation += 1
            elif event == SETUP_PACKET:
                await self.conn.ioctl(SET_PIPE_STATE, pipe(0), b"\x01", 1)

    async def loop(self, mine):
        """One OUT packet, then the same bytes as an IN transfer: order is kept. Transfers
        are one packet long: a longer OUT transfer would wait for a short packet the host
        does not owe it (a write of exactly 512 bytes ends without one)."""
        source, sink = bulk_pipes(self.class_info, self.speed)
        if not source or not sink:
            print("loopback_service.py: the interface needs a bulk IN and a bulk OUT", flush=True)
            return
        while self.generation == mine:
            status, _, data = await self.conn.ioctl(
                TRANSFER_OUT, pipe(sink[0]), output_length=sink[1]
            )
            if status != STATUS_SUCCESS:
                return  # cancelled by a reset or unconfigure; the next Configured restarts
            if data:
                status, _, _ = await self.conn.ioctl(TRANSFER_IN, pipe(source[0]), data, len(data))
                if status != STATUS_SUCCESS:
                    return


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-dir", default=None)
    parser.add_argument("--interface", default=GUID, help="the InterfaceGUID to open")
    args = parser.parse_args()
    path = os.path.join(args.runtime_dir or default_runtime_dir(), args.interface.upper())
    print(f"loopback_service.py: waiting for {path}", flush=True)
    while True:
        while not os.path.exists(path):
            await asyncio.sleep(0.1)
        try:
            conn = await Connection.open(path)
        except (ConnectionRefusedError, FileNotFoundError):
            await asyncio.sleep(0.1)
            continue
        print(f"loopback_service.py: opened {path}", flush=True)
        service = Loopback(conn)
        try:
            await service.run()
        except Gone as e:
            print(f"loopback_service.py: connection ended ({e}); waiting again", flush=True)
        finally:
            if service.task:
                service.task.cancel()
            conn.close()
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
