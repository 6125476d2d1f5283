"""A fake sysfs + /dev tree in tmp_path, laid out like the kernel's, for `modemd ports` tests.

    /sys/devices/usb1/1-N/               idVendor, idProduct       (the USB device)
    /sys/devices/usb1/1-N/1-N:1.I/       bInterfaceNumber, ...     (one interface)
      usb-serial (option, qcserial, ftdi_sio): 1-N:1.I/ttyUSBk/tty/ttyUSBk, device -> ttyUSBk
      cdc_acm:                                 1-N:1.I/tty/ttyACMk,        device -> 1-N:1.I
    /sys/class/tty/<name> -> the class directory
    /dev/<name> (a file, or a link to a pty), /dev/serial/by-id/usb-...-ifII-port0 -> ../../<name>
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

_bus_numbers = itertools.count(1)


@dataclass(frozen=True)
class Iface:
    number: str  # "02"
    tty: str  # "ttyUSB2" / "ttyACM0"
    klass: str = "ff"
    subclass: str = "ff"
    protocol: str = "ff"
    description: str = ""


def add_usb_device(root: Path, usb_id: str, interfaces: list[Iface], *, serial: str | None = None,
                   product: str = "Modem", dev_targets: dict[str, str] | None = None,
                   no_node: frozenset[str] = frozenset()) -> Path:
    vid, pid = usb_id.split(":")
    bus = f"1-{next(_bus_numbers)}"
    device = root / "sys" / "devices" / "usb1" / bus
    serial = serial or f"{bus.replace('-', '')}0123"
    device.mkdir(parents=True)
    (device / "idVendor").write_text(vid + "\n")
    (device / "idProduct").write_text(pid + "\n")
    (device / "product").write_text(product + "\n")
    class_tty = root / "sys" / "class" / "tty"
    class_tty.mkdir(parents=True, exist_ok=True)
    by_id = root / "dev" / "serial" / "by-id"
    by_id.mkdir(parents=True, exist_ok=True)
    for iface in interfaces:
        idir = device / f"{bus}:1.{int(iface.number, 16)}"
        idir.mkdir()
        for name, value in (("bInterfaceNumber", iface.number), ("bInterfaceClass", iface.klass),
                            ("bInterfaceSubClass", iface.subclass),
                            ("bInterfaceProtocol", iface.protocol)):
            (idir / name).write_text(value + "\n")
        if iface.description:
            (idir / "interface").write_text(iface.description + "\n")
        if iface.tty.startswith("ttyACM"):
            class_dir = idir / "tty" / iface.tty
            class_dir.mkdir(parents=True)
            (class_dir / "device").symlink_to(idir)
        else:
            port_dir = idir / iface.tty
            class_dir = port_dir / "tty" / iface.tty
            class_dir.mkdir(parents=True)
            (class_dir / "device").symlink_to(port_dir)
        (class_tty / iface.tty).symlink_to(class_dir)
        node = root / "dev" / iface.tty
        target = (dev_targets or {}).get(iface.tty)
        if iface.tty in no_node:  # someone else (the simulator) makes the node
            pass
        elif target:
            node.symlink_to(target)
        else:
            node.write_text("")
        (by_id / f"usb-{product}_{serial}-if{iface.number}-port0").symlink_to(
            Path("../..") / iface.tty)
    return device


def remove_usb_device(root: Path, device: Path) -> None:
    """As on unplug: the device's sysfs entries, /dev nodes and by-id links go away."""
    import shutil

    for entry in list((root / "sys" / "class" / "tty").iterdir()):
        if str(entry.resolve()).startswith(str(device) + "/"):
            name = entry.name
            entry.unlink()
            node = root / "dev" / name
            if node.is_symlink() or node.exists():
                node.unlink()
    for link in list((root / "dev" / "serial" / "by-id").iterdir()):
        if not link.exists():
            link.unlink()
    shutil.rmtree(device)


def option_ports(numbers: list[str], first_tty: int = 0) -> list[Iface]:
    """Vendor-specific interfaces served by the option driver: ttyUSB<first>, ..."""
    return [Iface(n, f"ttyUSB{first_tty + i}") for i, n in enumerate(numbers)]


def acm_ports(numbers: list[str], first_tty: int = 0) -> list[Iface]:
    return [Iface(n, f"ttyACM{first_tty + i}", klass="02", subclass="02", protocol="01")
            for i, n in enumerate(numbers)]
