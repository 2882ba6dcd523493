"""Independent Minecraft protocol clients from PyPI against a server on
127.0.0.1: mcstatus (Server List Ping) and mcrcon (RCON). The runner's
integration tests (runner/tests/it/pypi_clients.rs) run this script and
check the JSON it prints, so the stand-in's protocol is checked by code the
project did not write.

    python3 clients.py slp HOST PORT
    python3 clients.py rcon HOST PORT PASSWORD COMMAND...
    python3 clients.py rcon-wrong-password HOST PORT PASSWORD
    python3 clients.py rcon-stop HOST PORT PASSWORD

Exit codes: 0 done (JSON on stdout), 3 mcstatus or mcrcon is not installed
(`bash scripts/test-tools.sh` installs the pinned versions into
target/ci-tools/python), 1 anything else (a traceback on stderr).
"""

import asyncio
import json
import sys
from importlib.metadata import version

try:
    from mcstatus import JavaServer
    from mcrcon import MCRcon, MCRconException
except ImportError as e:
    print(
        f"{e}: the tests need mcstatus and mcrcon from PyPI; run "
        "`bash scripts/test-tools.sh` (pinned versions into target/ci-tools/python, "
        "where the tests look) or `python3 -m pip install mcstatus==14.2.0 mcrcon==0.7.0`",
        file=sys.stderr,
    )
    sys.exit(3)


def status_fields(st):
    """What a JavaStatusResponse says, as plain JSON."""
    return {
        "version_name": st.version.name,
        "protocol": st.version.protocol,
        "players_online": st.players.online,
        "players_max": st.players.max,
        "motd": st.motd.to_plain(),
        "enforces_secure_chat": st.enforces_secure_chat,
        "latency_ms": st.latency,
    }


def slp(host, port):
    # tries=1: mcstatus retries by default, which would hide a flaky answer.
    server = JavaServer(host, port, timeout=10)
    out = {
        "mcstatus": version("mcstatus"),
        # Modern clients announce their protocol (767 = 1.21.1); mcstatus's
        # default is 47 (1.8), which vanilla answers the same way.
        "status_767": status_fields(server.status(tries=1, version=767)),
        "status_47": status_fields(server.status(tries=1)),
        # A ping straight after the handshake, without a status request
        # first: vanilla answers it (mcstatus notes that many other
        # implementations do not).
        "ping_ms": server.ping(tries=1),
        "async_status": status_fields(asyncio.run(server.async_status(tries=1))),
    }
    print(json.dumps(out))


def rcon(host, port, password, commands):
    replies = []
    with MCRcon(host, password, port=port, timeout=10) as m:
        for c in commands:
            replies.append(m.command(c))
    print(json.dumps({"mcrcon": version("mcrcon"), "replies": replies}))


def rcon_wrong_password(host, port, password):
    try:
        with MCRcon(host, password, port=port, timeout=10) as m:
            m.command("list")
    except MCRconException as e:
        print(json.dumps({"refused": str(e)}))
        return
    print(json.dumps({"refused": None}))


def rcon_stop(host, port, password):
    """`stop`, whose answer mcrcon 0.7.0 may lose: after a packet it keeps
    reading while the socket is readable, and a server that closes the
    connection right after answering (as it exits) reads as readable; mcrcon
    then spins on the end of the stream until its timeout. Both outcomes are
    reported; the test checks the server side (the log and the exit)."""
    m = MCRcon(host, password, port=port, timeout=2)
    m.connect()
    try:
        print(json.dumps({"reply": m.command("stop"), "error": None}))
    except MCRconException as e:
        print(json.dumps({"reply": None, "error": str(e)}))
    finally:
        m.disconnect()


def main(argv):
    what, host, port = argv[1], argv[2], int(argv[3])
    if what == "slp":
        slp(host, port)
    elif what == "rcon":
        rcon(host, port, argv[4], argv[5:])
    elif what == "rcon-stop":
        rcon_stop(host, port, argv[4])
    elif what == "rcon-wrong-password":
        rcon_wrong_password(host, port, argv[4])
    else:
        raise SystemExit(f"unknown action {what!r}")


if __name__ == "__main__":
    main(sys.argv)
