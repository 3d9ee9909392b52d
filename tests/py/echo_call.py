#!/usr/bin/env python3
"""An independent Skype Desktop API controller over X11 (python-xlib), written from the
protocol description alone: it finds the client through the root property _SKYPE_INSTANCE,
speaks the API in 20-byte format-8 ClientMessages, places a call to echo123, opens the two
audio ports, plays a tone and checks the frequency of the echo that comes back.

Prints one JSON object; exits 0 when the echo has the tone's frequency (within 2 %).
"""

import argparse
import json
import math
import select
import socket
import struct
import sys
import threading
import time

from Xlib import X, Xatom, display, protocol

CHUNK = 20
RATE = 16000
FRAME_BYTES = 640  # 20 ms of 16-bit mono at 16 kHz


class SkypeApi:
    def __init__(self, display_name):
        self.d = display.Display(display_name)
        root = self.d.screen().root
        instance = self.d.intern_atom("_SKYPE_INSTANCE", only_if_exists=True)
        if instance == X.NONE:
            raise SystemExit("no _SKYPE_INSTANCE atom: no Skype client on this display")
        prop = root.get_full_property(instance, Xatom.WINDOW)
        if prop is None or prop.format != 32 or len(prop.value) != 1:
            raise SystemExit("no Skype client advertised on this display")
        self.skype = self.d.create_resource_object("window", prop.value[0] & 0xFFFFFFFF)
        self.win = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self.begin = self.d.intern_atom("SKYPECONTROLAPI_MESSAGE_BEGIN")
        self.cont = self.d.intern_atom("SKYPECONTROLAPI_MESSAGE")
        self.partial = None
        self.log = []

    def send(self, text):
        payload = text.encode("utf-8") + b"\0"
        for i in range(0, len(payload), CHUNK):
            chunk = payload[i:i + CHUNK].ljust(CHUNK, b"\0")
            ev = protocol.event.ClientMessage(
                window=self.win,
                client_type=self.begin if i == 0 else self.cont,
                data=(8, chunk),
            )
            self.skype.send_event(ev, event_mask=0, propagate=False)
        self.d.flush()

    def _pump(self, timeout):
        """Returns the next complete message, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            while self.d.pending_events():
                ev = self.d.next_event()
                if ev.type != X.ClientMessage:
                    continue
                fmt, raw = ev.data
                if fmt != 8 or ev.client_type not in (self.begin, self.cont):
                    continue
                data = bytes(raw)
                end = data.find(b"\0")
                piece = data if end < 0 else data[:end]
                if ev.client_type == self.begin:
                    self.partial = bytearray()
                elif self.partial is None:
                    continue  # a continuation without its BEGIN: dropped
                self.partial.extend(piece)
                if end >= 0:
                    msg = self.partial.decode("utf-8", "replace")
                    self.partial = None
                    self.log.append(msg)
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([self.d.fileno()], [], [], min(left, 0.1))

    def wait(self, pred, timeout=15.0, what="a message"):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self._pump(max(left, 0))
            if msg is None:
                raise SystemExit("timed out waiting for %s; saw %r" % (what, self.log))
            if pred(msg):
                return msg


def tone_frames(hz, seconds):
    out = []
    n = 0
    for _ in range(int(seconds * 50)):
        samples = []
        for _ in range(FRAME_BYTES // 2):
            samples.append(int(8000 * math.sin(2 * math.pi * hz * n / RATE)))
            n += 1
        out.append(struct.pack("<%dh" % len(samples), *samples))
    return out


def frequency(samples):
    """Zero-crossing estimate over the loud part of the recording."""
    loud = [s for s in samples]
    # Skip leading silence (the echo arrives after a delay).
    start = next((i for i, s in enumerate(loud) if abs(s) > 1000), None)
    if start is None:
        return None
    loud = loud[start:]
    end = len(loud)
    while end > 0 and abs(loud[end - 1]) < 1000:
        end -= 1
    loud = loud[:end]
    if len(loud) < RATE // 10:
        return None
    crossings = sum(1 for a, b in zip(loud, loud[1:]) if (a < 0) != (b < 0))
    return crossings * RATE / (2.0 * len(loud))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--display", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--tone", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    api = SkypeApi(args.display)
    api.send("NAME echo_call_py")
    api.send("PROTOCOL 8")
    api.wait(lambda m: m == "OK", what="OK")
    api.wait(lambda m: m == "CURRENTUSERHANDLE " + args.user, what="CURRENTUSERHANDLE")

    api.send("#p PING")
    api.wait(lambda m: m == "#p PONG", what="#p PONG")

    api.send("CALL echo123")
    placed = api.wait(lambda m: m.startswith("CALL ") and m.endswith(" STATUS UNPLACED")
                      or m.startswith("ERROR"), what="UNPLACED")
    if placed.startswith("ERROR"):
        raise SystemExit("call refused: " + placed)
    call = placed.split(" ")[1]
    final = ("FINISHED", "FAILED", "BUSY", "REFUSED", "MISSED", "CANCELLED")
    st = api.wait(lambda m: m.startswith("CALL %s STATUS " % call)
                  and m.split(" ")[3] in ("INPROGRESS",) + final, what="INPROGRESS")
    if not st.endswith("INPROGRESS"):
        raise SystemExit("call ended: " + st)

    listen_in = socket.socket()
    listen_in.bind(("127.0.0.1", 0))
    listen_in.listen(1)
    listen_out = socket.socket()
    listen_out.bind(("127.0.0.1", 0))
    listen_out.listen(1)
    p_in = listen_in.getsockname()[1]
    p_out = listen_out.getsockname()[1]
    api.send('ALTER CALL %s SET_INPUT PORT="%d"' % (call, p_in))
    api.send('#output ALTER CALL %s SET_OUTPUT PORT="%d"' % (call, p_out))
    api.wait(lambda m: m == '#output ALTER CALL %s SET_OUTPUT PORT="%d"' % (call, p_out),
             what="SET_OUTPUT echo")
    listen_in.settimeout(10)
    listen_out.settimeout(10)
    to_client, _ = listen_in.accept()
    from_client, _ = listen_out.accept()

    frames = tone_frames(args.tone, args.seconds)

    def play():
        t0 = time.monotonic()
        for i, f in enumerate(frames):
            delay = t0 + i * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            to_client.sendall(f)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    want = int((args.seconds + 0.8) * RATE * 2)
    got = bytearray()
    from_client.settimeout(10)
    while len(got) < want:
        chunk = from_client.recv(want - len(got))
        if not chunk:
            break
        got.extend(chunk)
    player.join()
    samples = struct.unpack("<%dh" % (len(got) // 2), bytes(got[: len(got) // 2 * 2]))
    f = frequency(samples)

    api.send("ALTER CALL %s HANGUP" % call)
    api.wait(lambda m: m == "CALL %s STATUS FINISHED" % call, what="FINISHED")

    ok = f is not None and abs(f - args.tone) <= args.tone * 0.02
    print(json.dumps({"call": call, "sent_hz": args.tone, "echo_hz": f,
                      "bytes": len(got), "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
