#!/usr/bin/env python3
"""Gadget Zero as a usbfn service, in Python 3 with the standard library only.

This is the same function as `usbfn service gadget-zero` (the Linux kernel's f_sourcesink,
0525:a4a0): bulk IN sources a pattern, bulk OUT sinks it, vendor requests 0x5b/0x5c store and
read back up to 4096 bytes. It talks to `usbfn daemon` over the interface's Unix socket with
the protocol of docs/ipc.md -- DeviceIoControl as frames -- and shows that a service needs
nothing from usbfn but that document.

    usbfn daemon --runtime-dir /tmp/usbfn &
    python3 examples/python/gadget_zero_service.py --runtime-dir /tmp/usbfn
    usbfn list        # the device is offered once this service has activated the bus
"""

import argparse
import asyncio
import os
import struct
import sys

# IOCTL_GENERICUSBFN_* = CTL_CODE(FILE_DEVICE_UNKNOWN, function, method, FILE_READ|WRITE_DATA)
TRANSFER_IN = 0x0022C00D
TRANSFER_OUT = 0x0022C016
CONTROL_STATUS_HANDSHAKE_IN = 0x0022C018
CONTROL_STATUS_HANDSHAKE_OUT = 0x0022C01C
GET_CLASS_INFO = 0x0022C022
SET_PIPE_STATE = 0x0022C029
ACTIVATE_USB_BUS = 0x0022C02C
BUS_EVENT_NOTIFICATION = 0x0022C036

STATUS_SUCCESS = 0x00000000
STATUS_SHARING_VIOLATION = 0xC0000043

# USBFN_EVENT
RESET, DETACH, SETUP_PACKET, CONFIGURED, UNCONFIGURED, SET_INTERFACE = 2, 3, 6, 7, 8, 11
# USBFN_BUS_SPEED -> index of the per-speed USBFN_CLASS_INTERFACE in the class info packet
SPEED_OFFSETS = {1: 0, 2: 196, 3: 552}  # Full, High, Super

# Frames (docs/ipc.md): header = u32 length (whole frame), u8 kind, 3 reserved zero bytes.
HEADER = struct.Struct("<IB3x")
KIND_HELLO, KIND_REQUEST, KIND_CANCEL, KIND_COMPLETION = 1, 2, 3, 4
REQUEST_FIXED = struct.Struct("<QIII")  # id, code, input_length, output_length
COMPLETION_FIXED = struct.Struct("<QII")  # id, status, information
HELLO_BODY = struct.Struct("<IIII")  # version, status, max_frame_len, max_outstanding

GUID = "{A4A00525-5A5A-4E2E-8000-0000000000A0}"
CONTROL_BUFFER = 4096
REQUEST_WRITE, REQUEST_READ = 0x5B, 0x5C


class Gone(Exception):
    """The daemon closed the connection."""


class Connection:
    """One opened interface: many requests outstanding, completed by id in any order."""

    def __init__(self, reader, writer, max_outstanding):
        self.reader, self.writer = reader, writer
        self.max_outstanding = max_outstanding
        self.pending = {}
        self.next_id = 1
        self.slots = asyncio.Semaphore(max_outstanding)
        self.task = asyncio.ensure_future(self._read_completions())

    @classmethod
    async def open(cls, path):
        reader, writer = await asyncio.open_unix_connection(path)
        kind, body = await read_frame(reader)
        if kind != KIND_HELLO:
            raise Gone("no HELLO")
        version, status, _max_frame, max_outstanding = HELLO_BODY.unpack(body)
        if version != 1:
            raise SystemExit(f"daemon speaks protocol version {version}, not 1")
        if status == STATUS_SHARING_VIOLATION:
            raise SystemExit(f"{path}: interface already open by another service")
        if status != STATUS_SUCCESS:
            raise SystemExit(f"{path}: open refused with status 0x{status:08x}")
        return cls(reader, writer, max_outstanding)

    async def ioctl(self, code, inp=b"", output=b"", output_length=0):
        """DeviceIoControl: returns (status, information, output bytes)."""
        async with self.slots:
            request_id = self.next_id
            self.next_id += 1
            done = asyncio.get_running_loop().create_future()
            self.pending[request_id] = done
            body = REQUEST_FIXED.pack(request_id, code, len(inp), output_length) + inp + output
            self.writer.write(HEADER.pack(HEADER.size + len(body), KIND_REQUEST) + body)
            try:
                return await done
            except asyncio.CancelledError:
                # CancelIoEx: the daemon still completes the request (STATUS_CANCELLED).
                self.writer.write(HEADER.pack(16, KIND_CANCEL) + struct.pack("<Q", request_id))
                raise

    async def _read_completions(self):
        try:
            while True:
                kind, body = await read_frame(self.reader)
                if kind != KIND_COMPLETION:
                    raise Gone(f"unexpected frame kind {kind}")
                request_id, status, information = COMPLETION_FIXED.unpack_from(body)
                done = self.pending.pop(request_id, None)
                if done is not None and not done.done():
                    done.set_result((status, information, body[COMPLETION_FIXED.size:]))
        except (Gone, asyncio.IncompleteReadError, ConnectionError) as e:
            for done in self.pending.values():
                if not done.done():
                    done.set_exception(Gone(str(e)))
            self.pending.clear()

    def close(self):
        self.task.cancel()
        self.writer.close()


async def read_frame(reader):
    header = await reader.readexactly(HEADER.size)
    length, kind = HEADER.unpack(header)
    return kind, await reader.readexactly(length - HEADER.size)


def pipe(pipe_id):
    return struct.pack("<I", pipe_id)


def pattern_bytes(pattern, length, mps):
    if pattern == 0:
        return bytes(length)
    return bytes((i % mps) % 63 for i in range(length))


def bulk_pipes(class_info, speed):
    """(IN pipe id, mps), (OUT pipe id, mps) at a speed, from USBFN_CLASS_INFORMATION_PACKET."""
    base = SPEED_OFFSETS.get(speed, 196)
    count = class_info[base + 1]
    found = {}
    for i in range(count):
        entry = base + 4 + 12 * i
        address = class_info[entry + 2]
        if class_info[entry + 3] & 0x03 != 0x02:
            continue  # not bulk (Gadget Zero also has interrupt and isochronous pipes)
        mps = struct.unpack_from("<H", class_info, entry + 4)[0] & 0x7FF
        pipe_id = struct.unpack_from("<I", class_info, entry + 8)[0]
        found.setdefault("in" if address & 0x80 else "out", (pipe_id, mps))
    return found.get("in"), found.get("out")


class GadgetZero:
    def __init__(self, conn, args):
        self.conn, self.args = conn, args
        self.generation = 0
        self.speed = 2
        self.control = bytearray(CONTROL_BUFFER)
        self.tasks = set()

    def spawn(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self):
        status, _, info = await self.conn.ioctl(GET_CLASS_INFO, output_length=748)
        check(status, "GET_CLASS_INFO")
        self.class_info = info
        status, _, _ = await self.conn.ioctl(ACTIVATE_USB_BUS)
        check(status, "ACTIVATE_USB_BUS")
        print("gadget_zero_service.py: bus activated", flush=True)
        while True:
            status, _, note = await self.conn.ioctl(BUS_EVENT_NOTIFICATION, output_length=12)
            check(status, "BUS_EVENT_NOTIFICATION")
            event = struct.unpack_from("<I", note)[0]
            if event == RESET:
                self.speed = struct.unpack_from("<I", note, 4)[0]
                self.generation += 1
            elif event in (CONFIGURED, SET_INTERFACE):
                self.generation += 1
                self.start_streams(self.generation)
            elif event in (UNCONFIGURED, DETACH):
                self.generation += 1
            elif event == SETUP_PACKET:
                await self.answer_setup(note[4:12])

    def start_streams(self, mine):
        source, sink = bulk_pipes(self.class_info, self.speed)
        for _ in range(self.args.qlen):
            if source:
                data = pattern_bytes(self.args.pattern, self.args.buflen, source[1])
                self.spawn(self.source(source[0], data, mine))
            if sink:
                self.spawn(self.sink(sink[0], sink[1], mine))

    async def source(self, pipe_id, data, mine):
        while self.generation == mine:
            status, _, _ = await self.conn.ioctl(TRANSFER_IN, pipe(pipe_id), data, len(data))
            if status != STATUS_SUCCESS:
                return  # cancelled by a reset/unconfigure, or refused: the next Configured restarts

    async def sink(self, pipe_id, mps, mine):
        while self.generation == mine:
            status, _, data = await self.conn.ioctl(
                TRANSFER_OUT, pipe(pipe_id), output_length=self.args.buflen
            )
            if status != STATUS_SUCCESS:
                return
            if data != pattern_bytes(self.args.pattern, len(data), mps):
                print("gadget_zero_service.py: OUT data breaks the pattern", flush=True)
                await self.conn.ioctl(SET_PIPE_STATE, pipe(pipe_id), b"\x01", 1)

    async def answer_setup(self, setup):
        request_type, request, value, index, length = struct.unpack("<BBHHH", setup)
        vendor = (request_type >> 5) & 3 == 2
        device_to_host = request_type & 0x80
        plain = value == 0 and index == 0 and length <= CONTROL_BUFFER
        if vendor and plain and request == REQUEST_WRITE and not device_to_host:
            if length:
                status, _, data = await self.conn.ioctl(TRANSFER_OUT, pipe(0), output_length=length)
                if status == STATUS_SUCCESS:
                    self.control[: len(data)] = data
            await self.conn.ioctl(CONTROL_STATUS_HANDSHAKE_IN, pipe(0))
        elif vendor and plain and request == REQUEST_READ and device_to_host:
            data = bytes(self.control[:length])
            status, _, _ = await self.conn.ioctl(TRANSFER_IN, pipe(0), data, len(data))
            if status == STATUS_SUCCESS:
                await self.conn.ioctl(CONTROL_STATUS_HANDSHAKE_OUT, pipe(0))
        else:
            await self.conn.ioctl(SET_PIPE_STATE, pipe(0), b"\x01", 1)


def check(status, what):
    if status != STATUS_SUCCESS:
        raise Gone(f"{what} failed with status 0x{status:08x}")


def default_runtime_dir():
    if os.geteuid() == 0:
        return "/run/usbfn"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg:
        raise SystemExit("not root and XDG_RUNTIME_DIR is unset: pass --runtime-dir")
    return os.path.join(xdg, "usbfn")


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-dir", default=None)
    parser.add_argument("--pattern", type=int, choices=(0, 1), default=0)
    parser.add_argument("--qlen", type=int, default=8)
    parser.add_argument("--buflen", type=int, default=4096)
    args = parser.parse_args()
    path = os.path.join(args.runtime_dir or default_runtime_dir(), GUID)
    while True:
        # Device-interface arrival, simply: wait for the socket (the Rust client uses inotify).
        while not os.path.exists(path):
            await asyncio.sleep(0.1)
        try:
            conn = await Connection.open(path)
        except (ConnectionRefusedError, FileNotFoundError):
            await asyncio.sleep(0.1)  # a stale socket: the daemon is restarting
            continue
        print(f"gadget_zero_service.py: opened {path}", flush=True)
        gz = GadgetZero(conn, args)
        try:
            await gz.run()
        except Gone as e:
            print(f"gadget_zero_service.py: connection ended ({e}); waiting again", flush=True)
        finally:
            for task in list(gz.tasks):
                task.cancel()
            conn.close()
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
