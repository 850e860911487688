#!/usr/bin/env python3
"""Answers a PAM application's prompts one at a time, as a person would.

    converse.py ANSWER... -- COMMAND...

libpam's text conversation reads each answer with one read(2) from standard
input: answers written in one go would reach the first prompt together. So
each answer is written only once the command has printed a prompt (output
ending in ": ") and is waiting. With no answer left, standard input is
closed. Prints everything the command printed; exits with its status.
"""

import os
import selectors
import subprocess
import sys

DEADLINE_S = 60


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit("usage: converse.py ANSWER... -- COMMAND...")
    split = args.index("--")
    answers, command = args[:split], args[split + 1 :]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdin is not None and proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    transcript = b""
    since_answer = b""
    while True:
        if not selector.select(timeout=DEADLINE_S):
            proc.kill()
            sys.stdout.write(transcript.decode(errors="replace"))
            sys.exit(f"converse.py: no output for {DEADLINE_S} s, killed {command[0]}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        transcript += chunk
        since_answer += chunk
        if since_answer.rstrip(b" ").endswith(b":"):
            since_answer = b""
            try:
                if answers:
                    proc.stdin.write(answers.pop(0).encode() + b"\n")
                    proc.stdin.flush()
                elif not proc.stdin.closed:
                    proc.stdin.close()
            except BrokenPipeError:
                pass
    status = proc.wait()
    sys.stdout.write(transcript.decode(errors="replace"))
    return status


if __name__ == "__main__":
    sys.exit(main())
