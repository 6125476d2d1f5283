"""Sending SMS (issue 15): requests, safety rules, the durable queue and its status documents.

``request`` reads and checks a request, ``policy`` decides whether it may be sent, ``service``
queues it, feeds the modem workers (``modemd.modem.sending``) and follows delivery reports.
"""

from modemd.send.request import RequestRefused, SendRequest, parse_request

__all__ = ["RequestRefused", "SendRequest", "parse_request"]
