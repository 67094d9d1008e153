"""Streamlit's command line, with this machine's addresses pinned first: nothing is looked up on the net.

Streamlit finds "this machine's" internal and external addresses by connecting a UDP socket to a
public address and by an HTTP request to a public service, both on first use: to print its banner,
and to judge the Origin of every WebSocket that is not from localhost, synchronously (with DNS
unanswered the whole server froze). Those addresses are the one ``agebatch serve`` listens on, so
they are set before Streamlit starts, and it never asks the network.
"""

from __future__ import annotations

import os
import sys

HOST_ENV = "AGEBATCH_SERVE_HOST"
EVERY_ADDRESS = ("0.0.0.0", "::", "")  # no one address to name: none is claimed


def pin_addresses(host: str) -> None:
    """Tell Streamlit that this machine's internal and external addresses are ``host``."""
    from streamlit import net_util

    known = "" if host in EVERY_ADDRESS else host.strip("[]")
    net_util._internal_ip = known  # read before any lookup: a value set here is never looked up again
    net_util._external_ip = known


def main() -> None:
    """``python -m agebatch.web.launch run APP FLAGS...``: Streamlit's own command line, addresses pinned."""
    from streamlit.web import cli

    pin_addresses(os.environ.get(HOST_ENV, "127.0.0.1"))
    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
