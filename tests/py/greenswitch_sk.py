#!/usr/bin/env python3
"""Runs `sk list` on the sidecar's listener with the greenswitch ESL client and prints it.

usage: greenswitch_sk.py HOST PORT PASSWORD
"""

import sys

import greenswitch


def main():
    host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    esl = greenswitch.InboundESL(host=host, port=port, password=password)
    esl.connect()
    reply = esl.send("api sk list")
    if reply.headers.get("Content-Type") != "api/response":
        print("unexpected reply: %r" % (reply.headers,))
        sys.exit(1)
    print(reply.data)
    esl.stop()


if __name__ == "__main__":
    main()
