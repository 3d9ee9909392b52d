#!/usr/bin/env python3
"""Drives the sidecar's ESL listener with the greenswitch client (an ESL library nobody on
this project wrote): login, `api status`, then a `bgapi` whose BACKGROUND_JOB event must
arrive. Prints one line per check; exits non-zero on the first failure.

usage: greenswitch_listener.py HOST PORT PASSWORD
"""

import sys

import gevent
import gevent.event
import greenswitch


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        sys.exit(1)


def main():
    host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    esl = greenswitch.InboundESL(host=host, port=port, password=password)
    esl.connect()
    check(esl.connected, "connected and authenticated")

    status = esl.send("api status")
    check(status.headers.get("Content-Type") == "api/response", "api status answered with api/response")
    check(status.data.startswith("UP "), "status body starts with the uptime line: %r" % status.data[:40])
    check("skypopen" in status.data, "status names skypopen")

    jobs = {}
    arrived = gevent.event.Event()

    def on_job(event):
        jobs[event.headers.get("Job-UUID")] = event
        arrived.set()

    esl.register_handle("BACKGROUND_JOB", on_job)
    reply = esl.send("event plain BACKGROUND_JOB")
    check(reply.data == "+OK event listener enabled plain", "subscribed: %r" % reply.data)

    reply = esl.send("bgapi status")
    job_uuid = reply.headers.get("Job-UUID")
    check(bool(job_uuid) and reply.data == "+OK Job-UUID: %s" % job_uuid, "bgapi accepted: %r" % reply.data)

    deadline = gevent.Timeout(20)
    deadline.start()
    try:
        while job_uuid not in jobs:
            arrived.wait()
            arrived.clear()
    except gevent.Timeout:
        check(False, "BACKGROUND_JOB %s arrived" % job_uuid)
    finally:
        deadline.cancel()
    event = jobs[job_uuid]
    check(event.headers.get("Job-Command") == "status", "job command is status")
    # greenswitch folds an event's body into its last header; the status text must be there.
    check("UP " in str(event.headers), "job result carries the status text")

    unknown = esl.send("api no_such_command")
    check(unknown.data == "-ERR no_such_command Command not found!\n", "unknown api: %r" % unknown.data)

    esl.stop()
    print("greenswitch: all checks passed", flush=True)


if __name__ == "__main__":
    main()
