"""systemd/99-modemd.rules, generated from the USB table (modemd/modem/usb_ids.py).

    python -m modemd.modem.udev_rules > systemd/99-modemd.rules

A test fails when the committed file and this output differ, so a USB id added to the table
is always kept away from ModemManager and gets its stable /dev/modem-* name.
"""

from __future__ import annotations

from collections.abc import Iterator

from modemd.modem.usb_ids import USB_MODEMS, UsbModem

HEADER = """\
# udev rules for modemd: keep ModemManager away from the modems modemd drives, give their AT
# ports a stable name and the dialout group.
#
# GENERATED from modemd/modem/usb_ids.py by `python -m modemd.modem.udev_rules`: edit the table,
# not this file (tests/test_usb_ports.py fails when they differ).
#
# Installed by scripts/install-pi as /etc/udev/rules.d/99-modemd.rules. After installing or
# editing it, udev must re-read it AND ModemManager must be restarted (it decides which ports it
# owns when a modem appears, and keeps a port it has taken):
#   sudo udevadm control --reload-rules
#   sudo udevadm trigger --action=change --subsystem-match=usb --subsystem-match=tty
#   sudo systemctl restart ModemManager      # or unplug and replug the modem
# Check with `udevadm info /dev/ttyUSB2 | grep ID_MM_DEVICE_IGNORE` and `ls -l /dev/modem-*`.
# `modemd probe PORT` says when ModemManager still holds or uses a port.
#
# ModemManager honours ENV{ID_MM_DEVICE_IGNORE}="1" on the USB device and on its ports
# (ModemManager "Common udev tags"); the first block sets it on the device and every port
# (tty, net, cdc-wdm) of each listed modem. For a modem not listed here add its id to the table
# (or a line below), or, if nothing on the gateway needs ModemManager:
#   sudo systemctl disable --now ModemManager && sudo systemctl mask ModemManager
#
# The ID_* properties of the second block come from udev's usb_id builtin (60-serial.rules), so
# these rules run late (99-). ID_USB_INTERFACE_NUM is the port's USB interface, two hex digits;
# `udevadm info /dev/ttyUSBn | grep -E 'ID_(VENDOR|MODEL)_ID|INTERFACE_NUM|SERIAL_SHORT'` shows a
# port's values. Point modemd.toml at the link: port = "/dev/modem-ec25".
"""

_PORT_ASSIGN = 'GROUP="dialout", MODE="0660", ENV{ID_MM_DEVICE_IGNORE}="1"'
_EC25 = 'ENV{ID_VENDOR_ID}=="2c7c", ENV{ID_MODEL_ID}=="0125"'

FOOTER = (
    "\n# Several modems of the same kind: tell them apart by their USB serial number "
    "(ID_SERIAL_SHORT;\n# some Huawei sticks have none: then use the physical USB socket, "
    "ENV{ID_PATH}) and give each\n# its own name. Examples (remove the '#'):\n"
    f'# {_EC25}, ENV{{ID_SERIAL_SHORT}}=="0123456789ABCDEF", ENV{{ID_USB_INTERFACE_NUM}}=="02", '
    f'SYMLINK+="modem-north", {_PORT_ASSIGN}\n'
    f'# {_EC25}, ENV{{ID_PATH}}=="platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.2", '
    f'SYMLINK+="modem-south", {_PORT_ASSIGN}\n'
    "\n# A SIM800 on the Raspberry Pi's GPIO UART is /dev/serial0 (a link made by Raspberry Pi "
    "OS);\n# it needs no rule. Behind a USB-TTL adapter (CP2102 10c4:ea60, CH340 1a86:7523, "
    "FTDI\n# 0403:6001) name it by the adapter's serial (modemd does not probe such adapters "
    "by itself:\n# the same chips are in Arduinos and Zigbee sticks):\n"
    '# ENV{ID_VENDOR_ID}=="10c4", ENV{ID_MODEL_ID}=="ea60", ENV{ID_SERIAL_SHORT}=="0001", '
    f'SYMLINK+="modem-sim800", {_PORT_ASSIGN}\n'
    '\nLABEL="modemd_end"\n'
)


def _ignore_line(modem: UsbModem) -> str:
    return (f'SUBSYSTEMS=="usb", ATTRS{{idVendor}}=="{modem.vendor}", '
            f'ATTRS{{idProduct}}=="{modem.product_id}", ENV{{ID_MM_DEVICE_IGNORE}}="1"')


def _layout_comment(modem: UsbModem) -> str:
    layout = ", ".join(f"{number} {role}" for number, role in modem.interfaces) or "not known"
    if modem.by_function:
        layout = f"the PC UI interface, found by class/protocol (fallback: {layout})"
    return f"# {modem.product} ({modem.usb_id}): {layout}.\n#   Source: {modem.source}"


def _port_lines(modem: UsbModem) -> Iterator[str]:
    match = f'ENV{{ID_VENDOR_ID}}=="{modem.vendor}", ENV{{ID_MODEL_ID}}=="{modem.product_id}"'
    link = f'SYMLINK+="{modem.link}", ' if modem.link else ""
    if modem.by_function:
        yield (f'{match}, ATTRS{{bInterfaceClass}}=="ff", '
               f'ATTRS{{bInterfaceProtocol}}=="02|12|62", {link}{_PORT_ASSIGN}')
        fallback = next((n for n, role in modem.interfaces if role == "at"), None)
        if fallback is not None:  # old firmware: every interface is ff/ff/ff
            yield (f'{match}, ATTRS{{bInterfaceProtocol}}=="ff", '
                   f'ENV{{ID_USB_INTERFACE_NUM}}=="{fallback}", {link}{_PORT_ASSIGN}')
        return
    if modem.at_interface is not None:
        yield (f'{match}, ENV{{ID_USB_INTERFACE_NUM}}=="{modem.at_interface}", '
               f'{link}{_PORT_ASSIGN}')


def render() -> str:
    lines = [HEADER, 'ACTION=="remove", GOTO="modemd_end"', "",
             "# --- ModemManager must not probe or use these modems: the device and all its "
             "ports ---"]
    lines += [_ignore_line(m) for m in USB_MODEMS]
    lines += ["", 'SUBSYSTEM!="tty", GOTO="modemd_end"', "",
              "# --- the AT ports: a stable name and the dialout group ---"]
    for modem in USB_MODEMS:
        lines += ["", _layout_comment(modem)]
        port_lines = list(_port_lines(modem))
        lines += port_lines or ["#   no AT port is marked: find it with `modemd probe`"]
    return "\n".join(lines) + "\n" + FOOTER


if __name__ == "__main__":
    print(render(), end="")
