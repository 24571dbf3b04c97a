"""Cyclone DDS plumbing: a participant bound to one network interface, readers and writers.

Real robot: domain 0 on the wired interface (e.g. ``enp3s0``, 192.168.123.x). Virtual G1: domain 1 on ``lo`` by
default. Tests use other domain ids so that parallel runs never mix.
"""

from __future__ import annotations

import atexit
import ipaddress
import socket
import time
from typing import Any

from cyclonedds.core import Listener, Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

_DOMAINS: dict[int, tuple[Domain | None, DomainParticipant, str | None]] = {}

RELIABLE = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepLast(64))
"""QoS of the control topics (sim control): nothing may be lost."""


def domain_config(interface: str | None) -> str | None:
    """Cyclone XML binding the domain to ``interface`` (None: Cyclone's own choice), with tracing off."""
    if not interface:
        return None
    return (
        '<CycloneDDS><Domain Id="any"><General><Interfaces>'
        f'<NetworkInterface name="{interface}" priority="default" multicast="default"/>'
        "</Interfaces></General><Tracing><Verbosity>none</Verbosity></Tracing></Domain></CycloneDDS>"
    )


def check_interface(interface: str) -> None:
    """Raise ``ValueError`` naming this machine's network interfaces when ``interface`` (a name such as ``enp3s0``
    or an IP address) is not one of them: Cyclone DDS would otherwise fail with a non-specific error."""
    try:
        ipaddress.ip_address(interface)
        return  # an address: Cyclone matches it against the interfaces itself
    except ValueError:
        pass
    names = [name for _, name in socket.if_nameindex()]
    if interface not in names:
        raise ValueError(f"network interface {interface!r} not found; this machine has: {', '.join(names)} "
                         "(the robot's is the one on 192.168.123.x)")  # fmt: skip


def participant(domain_id: int, interface: str | None = None) -> DomainParticipant:
    """The process's participant on ``domain_id`` (created once, bound to ``interface``)."""
    if domain_id in _DOMAINS:
        dom, dp, iface = _DOMAINS[domain_id]
        if iface != interface:
            raise RuntimeError(f"domain {domain_id} is already bound to interface {iface!r}, not {interface!r}")
        return dp
    if interface:
        check_interface(interface)
    cfg = domain_config(interface)
    try:
        dom = Domain(domain_id, cfg) if cfg else None
    except Exception as e:  # cyclonedds.core.DDSException: its message is "Non specific error"
        raise RuntimeError(f"DDS could not start on interface {interface!r} (domain {domain_id}): {e}") from e
    dp = DomainParticipant(domain_id)
    _DOMAINS[domain_id] = (dom, dp, interface)
    return dp


def close_participants() -> None:
    """Delete this process's participants, and with them every reader, writer and listener under them.

    Runs at exit (atexit), while the interpreter still hands the GIL to Cyclone's threads. Left to the final
    garbage collection, deleting a reader waits for a listener callback that itself waits for the GIL forever,
    and the process never exits (seen with a reader stamping arrivals at 500 Hz).
    """
    while _DOMAINS:
        _, (dom, dp, _) = _DOMAINS.popitem()
        for entity in (dp, dom):
            if entity is not None:
                entity.__del__()  # Entity.__del__ deletes once; the later garbage collection finds nothing to do


atexit.register(close_participants)


class MatchCounter(Listener):
    """Counts matched remote endpoints of a writer or reader."""

    def __init__(self) -> None:
        super().__init__()
        self.matched = 0

    def on_publication_matched(self, writer: Any, status: Any) -> None:  # noqa: D102
        self.matched = int(status.current_count)

    def on_subscription_matched(self, reader: Any, status: Any) -> None:  # noqa: D102
        self.matched = int(status.current_count)


class ArrivalClock(MatchCounter):
    """A reader's match counter that also stamps each arrival of data (``time.monotonic()``, in DDS's own thread).

    The runtime takes samples only at its ticks; the stamp tells it when the newest one actually arrived, so that
    the watchdog measures the age of the robot's state and not the age of the runtime's last look at it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_arrival: float | None = None
        """Monotonic time (s) of the latest data-available notification (None before the first)."""
        self.arrivals = 0
        """Number of notifications so far."""

    def on_data_available(self, reader: Any) -> None:  # noqa: D102, ARG002
        self.last_arrival = time.monotonic()
        self.arrivals += 1


class Node:
    """Writers and readers of one process on one domain."""

    def __init__(self, domain_id: int, interface: str | None = None) -> None:
        self.domain_id = domain_id
        self.interface = interface
        self.dp = participant(domain_id, interface)
        self._topics: dict[str, Topic] = {}

    def topic(self, name: str, data_type: type) -> Topic:
        """The topic ``name`` of ``data_type`` (one per name)."""
        if name not in self._topics:
            self._topics[name] = Topic(self.dp, name, data_type)
        return self._topics[name]

    def writer(self, name: str, data_type: type, qos: Qos | None = None) -> tuple[DataWriter, MatchCounter]:
        """A writer and its match counter."""
        lis = MatchCounter()
        return DataWriter(self.dp, self.topic(name, data_type), qos=qos, listener=lis), lis

    def reader(
        self, name: str, data_type: type, qos: Qos | None = None, listener: MatchCounter | None = None
    ) -> tuple[DataReader, MatchCounter]:
        """A reader and its match counter (``listener``, e.g. an :class:`ArrivalClock`; default a plain counter)."""
        lis = listener if listener is not None else MatchCounter()
        return DataReader(self.dp, self.topic(name, data_type), qos=qos, listener=lis), lis


def take_latest(reader: DataReader, n: int = 64) -> Any:
    """The newest valid sample waiting in ``reader`` (None when none)."""
    last = None
    for s in reader.take(N=n):
        if getattr(s, "sample_info", None) is not None and s.sample_info.valid_data:
            last = s
    return last


def wait_matched(counter: MatchCounter, count: int = 1, timeout: float = 10.0) -> bool:
    """Block until ``counter`` reports ``count`` matches (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if counter.matched >= count:
            return True
        time.sleep(0.01)
    return counter.matched >= count
